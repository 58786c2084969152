import type { ColumnBatch } from './column-batch.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/** Doubles hold integers exactly up to here; a BIGINT beyond it is left to the row path's own handling. */
const EXACT_INTEGER = 2 ** 53;

/**
 * Marks (1) the rows the columnar path cannot vouch for: nulls, NaN and infinities, numbers outside their range,
 * non-integers in integer fields, values outside an enum, categories the transforms do not know, unreadable lines. Marked rows go
 * through the row path, which names the exact reason — or scores them (e.g. an optional field left null).
 */
export function rowsForRowPath(plan: ColumnarPlan, batch: ColumnBatch): Uint8Array {
  const marked = new Uint8Array(batch.rows);
  plan.fields.forEach((field, f) => {
    const values = batch.values[f]!;
    const { type, minimum, maximum } = field.spec;
    const min = minimum ?? -Infinity;
    const max = maximum ?? Infinity;
    if (type === 'number' || type === 'integer') {
      const integer = type === 'integer';
      for (let r = 0; r < batch.rows; r++) {
        const v = values[r]!;
        // NaN fails every comparison, so `!(v >= min)` also catches nulls.
        if (
          !(v >= min && v <= max) ||
          !Number.isFinite(v) ||
          Math.abs(v) >= EXACT_INTEGER ||
          (integer && !Number.isInteger(v))
        )
          marked[r] = 1;
      }
    } else if (field.allowed) {
      const allowed = field.allowed;
      for (let r = 0; r < batch.rows; r++) {
        const code = values[r]!;
        if (!(code >= 0) || allowed[code] !== 1) marked[r] = 1;
      }
    } else {
      for (let r = 0; r < batch.rows; r++) if (Number.isNaN(values[r]!)) marked[r] = 1;
    }
  });
  for (const tensor of plan.tensors) {
    for (const column of tensor.columns) {
      const codes = batch.values[column.field]!;
      if (column.kind === 'one_hot' && !column.zerosOnUnknown) {
        for (let r = 0; r < batch.rows; r++) if (!(codes[r]! >= 0) || column.slot[codes[r]!]! < 0) marked[r] = 1;
      } else if (column.kind === 'lookup' && column.unknown === undefined) {
        for (let r = 0; r < batch.rows; r++)
          if (!(codes[r]! >= 0) || Number.isNaN(column.value[codes[r]!]!)) marked[r] = 1;
      }
    }
  }
  if (plan.parseErrors) {
    const unreadable = batch.values[plan.fields.length]!;
    for (let r = 0; r < batch.rows; r++) if (unreadable[r] === 1) marked[r] = 1;
  }
  return marked;
}
