import type { TensorMap } from '../../runtime/tensor.ts';
import type { ColumnBatch } from './column-batch.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/**
 * model.yaml's preprocess over rows [from, to) of a column batch, written straight into the input tensors.
 * Marked rows stay zero (they are scored by the row path; their model outputs are ignored). Values are computed
 * in doubles and stored into the tensor's element type, as the row path does, so the tensors are identical.
 */
export function buildTensors(
  plan: ColumnarPlan,
  batch: ColumnBatch,
  marked: Uint8Array,
  from: number,
  to: number,
): TensorMap {
  const n = to - from;
  const tensors: TensorMap = {};
  for (const tensor of plan.tensors) {
    const width = tensor.width;
    const data = tensor.dtype === 'float32' ? new Float32Array(n * width) : new Float64Array(n * width);
    let offset = 0;
    for (const column of tensor.columns) {
      const values = batch.values[column.field]!;
      if (column.kind === 'numeric') {
        const transform = column.transform;
        for (let r = 0; r < n; r++) if (marked[from + r] === 0) data[r * width + offset] = transform(values[from + r]!);
        offset += 1;
      } else if (column.kind === 'one_hot') {
        const slot = column.slot;
        for (let r = 0; r < n; r++) {
          const code = values[from + r]!;
          if (marked[from + r] === 0 && code >= 0 && slot[code]! >= 0) data[r * width + offset + slot[code]!] = 1;
        }
        offset += column.width;
      } else {
        for (let r = 0; r < n; r++) {
          if (marked[from + r] !== 0) continue;
          const code = values[from + r]!;
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
