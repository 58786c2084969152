import { CaliperError } from '../../errors.ts';
import type { TensorMap } from '../../runtime/tensor.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/**
 * model.yaml's postprocess over a whole batch of model outputs: writes rows [at, at + n) of one Float64Array per
 * prediction field (booleans as 0/1), with the row path's arithmetic (sigmoid, `>` threshold).
 */
export function writePredictions(
  plan: ColumnarPlan,
  outputs: TensorMap,
  columns: readonly Float64Array[],
  at: number,
  n: number,
): void {
  plan.predictions.forEach((field, p) => {
    const out = columns[p]!;
    const source = field.source;
    // One loop per source kind, with no call per value (a closure call per row cost more than the arithmetic).
    let values: ArrayLike<number>;
    let stride = 1;
    let first = 0;
    if ('output' in source) {
      const data = outputs[source.output]?.data;
      if (!(data instanceof Float32Array || data instanceof Float64Array))
        throw new CaliperError('CALIPER_INFERENCE_FAILED', `output ${source.output}: expected a float tensor`);
      values = data;
      stride = source.stride;
      first = source.index;
    } else {
      values = columns[source.field]!;
      first = at;
    }
    const { sigmoid, threshold } = field;
    if (!sigmoid && threshold === undefined) {
      for (let r = 0; r < n; r++) out[at + r] = values[first + r * stride]!;
      return;
    }
    for (let r = 0; r < n; r++) {
      let v = values[first + r * stride]!;
      if (sigmoid) v = 1 / (1 + Math.exp(-v));
      out[at + r] = threshold === undefined ? v : v > threshold ? 1 : 0;
    }
  });
}
