import { describe, expect, it } from 'vitest';
import type { ScalarStep } from '../../src/config/model-config.ts';
import { applyScalarSteps, buildTensors } from '../../src/batch/columnar/column-preprocessor.ts';
import type { ColumnBatch } from '../../src/batch/columnar/column-batch.ts';
import type { ColumnarPlan, TensorPlan } from '../../src/batch/columnar/columnar-plan.ts';
import { scalarTransform } from '../../src/pipeline/preprocess.ts';

/**
 * The columnar preprocess (src/batch/columnar/column-preprocessor.ts) runs model.yaml's numeric steps one loop per
 * step over a whole column. Every value must come out bit for bit as the row path's composed transform
 * (scalarTransform) computes it.
 */
const VALUES = [0, -0, 1, -1, 0.5, 2.75, -3.25, 7, 42.42, 1e-9, 1e9, -1e9, Number.NaN, Infinity, -Infinity, 100];

const STEP_LISTS: readonly (readonly ScalarStep[])[] = [
  [{ op: 'identity' }],
  [{ op: 'log1p' }],
  [{ op: 'standardize', mean: 3.5, std: 2.25 }],
  [{ op: 'min_max', min: -2, max: 9.5 }],
  [{ op: 'clip', min: -1.5, max: 3 }],
  [{ op: 'divide', by: 7 }],
  [{ op: 'multiply', by: -0.3 }],
  [{ op: 'log1p' }, { op: 'divide', by: 10 }],
  [{ op: 'clip', min: 0, max: 50 }, { op: 'log1p' }, { op: 'standardize', mean: 1.25, std: 0.75 }],
  [
    { op: 'multiply', by: 3 },
    { op: 'min_max', min: 1, max: 4 },
    { op: 'clip', min: 0.25, max: 0.75 },
  ],
];

describe('applyScalarSteps', () => {
  for (const steps of STEP_LISTS) {
    it(`[${steps.map((s) => s.op).join(', ')}] gives every value the row path's transform, bit for bit`, () => {
      const column = Float64Array.from(VALUES);
      applyScalarSteps(steps, column, VALUES.length);
      const transform = scalarTransform(steps);
      // Object.is tells -0 from 0 (and a NaN from a number).
      VALUES.forEach((v, r) => expect(Object.is(column[r], transform(v)), `value ${v}: ${column[r]}`).toBe(true));
    });
  }

  it('touches only the first n values', () => {
    const column = Float64Array.from([1, 2, 3, 4]);
    applyScalarSteps([{ op: 'multiply', by: 10 }], column, 2);
    expect([...column]).toEqual([10, 20, 3, 4]);
  });
});

/** A plan of two tensors over three fields: numeric steps, a one-hot and a lookup, in float32 and float64. */
function plan(): ColumnarPlan {
  const features: TensorPlan = {
    name: 'features',
    dtype: 'float32',
    width: 5,
    dims: [5],
    columns: [
      { kind: 'numeric', field: 0, steps: [{ op: 'log1p' }, { op: 'divide', by: 10 }] },
      { kind: 'one_hot', field: 1, width: 3, slot: Int32Array.from([0, 1, 2, -1]), zerosOnUnknown: true },
      { kind: 'numeric', field: 2, steps: [{ op: 'clip', min: 0, max: 5 }] },
    ],
  };
  const extra: TensorPlan = {
    name: 'extra',
    dtype: 'float64',
    width: 2,
    dims: [2],
    columns: [
      { kind: 'lookup', field: 1, value: Float64Array.from([0.5, Number.NaN, 2.5, -4]), unknown: 9 },
      { kind: 'numeric', field: 2, steps: [{ op: 'standardize', mean: 1, std: 3 }] },
    ],
  };
  return {
    source: { path: 'unused.parquet', hive: false, text: false },
    parseErrors: false,
    fields: [],
    tensors: [features, extra],
    predictions: [],
    outputNames: [],
    keptSql: [],
  };
}

function batch(rows: number, seed: number): ColumnBatch {
  return {
    firstRow: 0,
    rows,
    values: [
      Float64Array.from({ length: rows }, (_, r) => (r * 37 + seed) % 1000),
      Float64Array.from({ length: rows }, (_, r) => ((r + seed) % 5) - 1),
      Float64Array.from({ length: rows }, (_, r) => ((r * 3 + seed) % 17) - 6),
    ],
  };
}

const plain = (tensors: ReturnType<typeof buildTensors>): Record<string, { dims: number[]; data: number[] }> =>
  Object.fromEntries(
    Object.entries(tensors).map(([name, t]) => [
      name,
      { dims: t.dims, data: [...(t.data as Float32Array | Float64Array)] },
    ]),
  );

describe('buildTensors', () => {
  it('writes each row as the row path would: steps in doubles, one-hot slots, lookups with their unknown value', () => {
    const b: ColumnBatch = {
      firstRow: 0,
      rows: 3,
      values: [Float64Array.from([0, 9, 99]), Float64Array.from([2, 1, -1]), Float64Array.from([-2, 3, 8])],
    };
    const tensors = buildTensors(plan(), b, new Uint8Array(3), 0, 3);
    expect(tensors.features!.type).toBe('float32');
    expect(tensors.features!.dims).toEqual([3, 5]);
    const f = (x: number): number => Math.fround(x);
    expect([...(tensors.features!.data as Float32Array)]).toEqual([
      ...[f(Math.log1p(0) / 10), 0, 0, 1, 0],
      ...[f(Math.log1p(9) / 10), 0, 1, 0, f(3)],
      ...[f(Math.log1p(99) / 10), 0, 0, 0, f(5)],
    ]);
    expect(tensors.extra!.type).toBe('float64');
    expect(tensors.extra!.dims).toEqual([3, 2]);
    // code 2 → 2.5; code 1 → NaN in the table → unknown 9; code -1 (not in the dictionary) → unknown 9.
    expect([...(tensors.extra!.data as Float64Array)]).toEqual([2.5, (-2 - 1) / 3, 9, (3 - 1) / 3, 9, (8 - 1) / 3]);
  });

  it('leaves marked rows all zero and writes the others, over rows [from, to) of the batch', () => {
    const b = batch(12, 3);
    const marked = new Uint8Array(12);
    marked[4] = 1;
    marked[7] = 1;
    const some = plain(buildTensors(plan(), b, marked, 3, 10));
    const none = plain(buildTensors(plan(), b, new Uint8Array(12), 3, 10));
    expect(some.features!.dims).toEqual([7, 5]);
    for (const [name, width] of [
      ['features', 5],
      ['extra', 2],
    ] as const) {
      for (let r = 0; r < 7; r++) {
        const row = (t: { data: number[] }): number[] => t.data.slice(r * width, (r + 1) * width);
        if (r === 1 || r === 4) expect(row(some[name]!), `${name} row ${r}`).toEqual(new Array(width).fill(0));
        else expect(row(some[name]!), `${name} row ${r}`).toEqual(row(none[name]!));
      }
      expect(row0NonZero(none[name]!.data), name).toBe(true);
    }
  });
});

function row0NonZero(data: number[]): boolean {
  return data.some((v) => v !== 0);
}
