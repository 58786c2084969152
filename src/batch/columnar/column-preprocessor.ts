import type { ScalarStep } from '../../config/model-config.ts';
import type { TensorMap } from '../../runtime/tensor.ts';
import type { ColumnBatch } from './column-batch.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/**
 * A numeric column's model.yaml steps applied in place to `values[0, n)`, one step at a time over the whole column: a
 * plain loop per step, with no call per value. Each value gets the arithmetic the row path's composed transform
 * (scalarTransform in src/pipeline/preprocess.ts) gives it, step by step in doubles, so the results are identical.
 */
export function applyScalarSteps(steps: readonly ScalarStep[], values: Float64Array, n: number): void {
  for (const step of steps) {
    switch (step.op) {
      case 'identity':
        break;
      case 'log1p':
        for (let r = 0; r < n; r++) values[r] = Math.log1p(values[r]!);
        break;
      case 'standardize': {
        const { mean, std } = step;
        for (let r = 0; r < n; r++) values[r] = (values[r]! - mean) / std;
        break;
      }
      case 'min_max': {
        const { min } = step;
        const span = step.max - step.min;
        for (let r = 0; r < n; r++) values[r] = (values[r]! - min) / span;
        break;
      }
      case 'clip': {
        const { min, max } = step;
        for (let r = 0; r < n; r++) {
          const v = values[r]!;
          values[r] = v < min ? min : Math.min(v, max);
        }
        break;
      }
      case 'divide': {
        const by = step.by;
        for (let r = 0; r < n; r++) values[r] = values[r]! / by;
        break;
      }
      case 'multiply': {
        const by = step.by;
        for (let r = 0; r < n; r++) values[r] = values[r]! * by;
        break;
      }
    }
  }
}

/**
 * model.yaml's preprocess over rows [from, to) of a column batch, written straight into the input tensors: each
 * column is one loop over its rows (numeric steps over a column of doubles, then one strided store into the tensor).
 * Marked rows stay zero (they are scored by the row path; their model outputs are ignored). Values are computed in
 * doubles and stored into the tensor's element type, as the row path does, so the tensors are identical.
 */
export function buildTensors(
  plan: ColumnarPlan,
  batch: ColumnBatch,
  marked: Uint8Array,
  from: number,
  to: number,
): TensorMap {
  const n = to - from;
  const rowMarked = marked.subarray(from, to);
  const anyMarked = rowMarked.includes(1);
  const scratch = new Float64Array(n);
  const tensors: TensorMap = {};
  for (const tensor of plan.tensors) {
    const width = tensor.width;
    const data = tensor.dtype === 'float32' ? new Float32Array(n * width) : new Float64Array(n * width);
    let offset = 0;
    for (const column of tensor.columns) {
      const values = batch.values[column.field]!.subarray(from, to);
      if (column.kind === 'numeric') {
        scratch.set(values);
        applyScalarSteps(column.steps, scratch, n);
        if (anyMarked) {
          for (let r = 0; r < n; r++) if (rowMarked[r] === 0) data[r * width + offset] = scratch[r]!;
        } else for (let r = 0, at = offset; r < n; r++, at += width) data[at] = scratch[r]!;
        offset += 1;
      } else if (column.kind === 'one_hot') {
        const slot = column.slot;
        for (let r = 0; r < n; r++) {
          const code = values[r]!;
          if (rowMarked[r] === 0 && code >= 0 && slot[code]! >= 0) data[r * width + offset + slot[code]!] = 1;
        }
        offset += column.width;
      } else {
        for (let r = 0; r < n; r++) {
          if (rowMarked[r] !== 0) continue;
          const code = values[r]!;
          const value = code >= 0 ? column.value[code]! : NaN;
          data[r * width + offset] = Number.isNaN(value) ? (column.unknown ?? 0) : value;
        }
        offset += 1;
      }
    }
    tensors[tensor.name] = { type: tensor.dtype, dims: [n, ...tensor.dims], data };
  }
  return tensors;
}
