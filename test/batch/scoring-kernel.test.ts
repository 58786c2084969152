import { describe, expect, it } from 'vitest';
import type { InputFieldSpec } from '../../src/config/model-config.ts';
import type { ColumnBatch } from '../../src/batch/columnar/column-batch.ts';
import { buildTensors } from '../../src/batch/columnar/column-preprocessor.ts';
import { rowsForRowPath } from '../../src/batch/columnar/column-validator.ts';
import type { ColumnarPlan, FieldColumn, TensorPlan } from '../../src/batch/columnar/columnar-plan.ts';
import { writePredictions } from '../../src/batch/columnar/column-postprocessor.ts';
import {
  compilePredictionWriter,
  compileScoringKernel,
  predictionWriterSource,
  scoringKernelSource,
} from '../../src/batch/columnar/scoring-kernel.ts';

/**
 * The one-pass scorer's compiled kernel (src/batch/columnar/scoring-kernel.ts) must decide and compute exactly what the
 * generic columnar path does: a vector needs the row path iff rowsForRowPath marks a row of it, and a clean vector's
 * tensors equal buildTensors'. Checked row by row and over whole vectors, on plans using every rule the plan compiles.
 */
const spec = (name: string, type: InputFieldSpec['type'], extra: Partial<InputFieldSpec> = {}): InputFieldSpec => ({
  name,
  type,
  required: true,
  ...extra,
});

function field(s: InputFieldSpec, extra: Partial<FieldColumn> = {}): FieldColumn {
  return { spec: s, sql: 'unused', ...extra };
}

/** Fields: a bounded number, an integer, a string with an enum (codes 0-2 allowed, 3 not), a boolean, an open string. */
const FIELDS: FieldColumn[] = [
  field(spec('amount', 'number', { minimum: 0, maximum: 5000 })),
  field(spec('count', 'integer', { minimum: -3 })),
  field(spec('category', 'string', { enum: ['a', 'b', 'c'] }), {
    dictionary: ['a', 'b', 'c', 'd'],
    allowed: Uint8Array.from([1, 1, 1, 0]),
  }),
  field(spec('flag', 'boolean')),
  field(spec('region', 'string'), { dictionary: ['north', 'south', 'east'] }),
];

const TENSORS: TensorPlan[] = [
  {
    name: 'features',
    dtype: 'float32',
    width: 9,
    dims: [9],
    columns: [
      { kind: 'numeric', field: 0, steps: [{ op: 'log1p' }, { op: 'divide', by: 10 }] },
      {
        kind: 'numeric',
        field: 1,
        steps: [
          { op: 'clip', min: -2, max: 40 },
          { op: 'standardize', mean: 3.5, std: 2.25 },
        ],
      },
      { kind: 'one_hot', field: 2, width: 3, slot: Int32Array.from([0, 1, 2, -1]), zerosOnUnknown: false },
      { kind: 'numeric', field: 3, steps: [{ op: 'identity' }] },
      { kind: 'one_hot', field: 4, width: 2, slot: Int32Array.from([0, -1, 1]), zerosOnUnknown: true },
      { kind: 'lookup', field: 4, value: Float64Array.from([0.25, Number.NaN, 7]), unknown: -1 },
    ],
  },
  {
    name: 'extra',
    dtype: 'float64',
    width: 3,
    dims: [3],
    columns: [
      {
        kind: 'numeric',
        field: 0,
        steps: [
          { op: 'min_max', min: 10, max: 90 },
          { op: 'multiply', by: -3 },
        ],
      },
      { kind: 'lookup', field: 2, value: Float64Array.from([1.5, 2.5, 3.5, Number.NaN]), unknown: undefined },
      { kind: 'numeric', field: 1, steps: [] },
    ],
  },
];

function plan(parseErrors = false): ColumnarPlan {
  return {
    source: { path: 'unused.parquet', hive: false, text: false },
    parseErrors,
    fields: FIELDS,
    tensors: TENSORS,
    predictions: [],
    outputNames: [],
    keptSql: [],
  };
}

/** A deterministic pseudo-random source (the test must not depend on chance). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const pick = <T>(next: () => number, xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;

/** Columns for `rows` rows; `badRate` of the values are ones the validation must catch (or edge values it must pass). */
function columns(rows: number, seed: number, badRate: number, parseErrors = false): Float64Array[] {
  const next = random(seed);
  const value = (good: () => number, bad: readonly number[]): number => (next() < badRate ? pick(next, bad) : good());
  const cols = [
    Float64Array.from({ length: rows }, () =>
      value(
        () => Math.round(next() * 500000) / 100,
        [Number.NaN, -0.01, 5000.5, Infinity, -Infinity, 0, 5000, 2 ** 53],
      ),
    ),
    Float64Array.from({ length: rows }, () =>
      value(() => Math.floor(next() * 60) - 3, [Number.NaN, 2.5, -4, -3, 2 ** 53, -(2 ** 53), 1e300]),
    ),
    Float64Array.from({ length: rows }, () => value(() => Math.floor(next() * 3), [3, -1, Number.NaN, 7])),
    Float64Array.from({ length: rows }, () => value(() => (next() < 0.5 ? 1 : 0), [Number.NaN])),
    Float64Array.from({ length: rows }, () => value(() => Math.floor(next() * 3), [-1, Number.NaN, 5])),
  ];
  if (parseErrors) cols.push(Float64Array.from({ length: rows }, () => (next() < badRate ? 1 : 0)));
  return cols;
}

const asNumbers = (data: unknown): number[] => [...(data as Float32Array | Float64Array)];

describe('the one-pass scoring kernel', () => {
  for (const parseErrors of [false, true]) {
    it(`needs the row path for a row exactly when rowsForRowPath marks it${parseErrors ? ' (with unreadable lines)' : ''}`, () => {
      const p = plan(parseErrors);
      const kernel = compileScoringKernel(p, 16);
      const cols = columns(3000, parseErrors ? 11 : 7, 0.2, parseErrors);
      const marked = rowsForRowPath(p, { firstRow: 0, rows: 3000, values: cols });
      let bad = 0;
      for (let r = 0; r < 3000; r++) {
        const one = cols.map((c) => c.subarray(r, r + 1));
        const verdict = kernel.run(one, 1);
        expect(verdict === undefined, `row ${r}: ${one.map((c) => c[0]).join(', ')}`).toBe(marked[r] === 1);
        bad += marked[r]!;
      }
      // Both kinds of rows were seen.
      expect(bad).toBeGreaterThan(300);
      expect(bad).toBeLessThan(2700);
    });
  }

  it('writes the tensors buildTensors writes, vector after vector, over reused arrays', () => {
    const p = plan();
    const kernel = compileScoringKernel(p, 2048);
    for (const [seed, rows] of [
      [1, 2048],
      [2, 700],
      [3, 2048],
      [4, 1],
    ] as const) {
      const cols = columns(rows, seed, 0);
      const batch: ColumnBatch = { firstRow: 0, rows, values: cols };
      const marked = rowsForRowPath(p, batch);
      expect(marked.includes(1)).toBe(false);
      const expected = buildTensors(p, batch, marked, 0, rows);
      const got = kernel.run(cols, rows)!;
      expect(Object.keys(got)).toEqual(['features', 'extra']);
      for (const name of ['features', 'extra']) {
        expect(got[name]!.type, name).toBe(expected[name]!.type);
        expect(got[name]!.dims, name).toEqual([rows, name === 'features' ? 9 : 3]);
        expect(got[name]!.data.constructor, name).toBe(expected[name]!.data.constructor);
        expect(asNumbers(got[name]!.data), name).toEqual(asNumbers(expected[name]!.data));
      }
    }
  });

  it('computes each value as the row path does: the steps in doubles, in order, then stored', () => {
    const p = plan();
    const kernel = compileScoringKernel(p, 4);
    const cols = [
      [99, 2],
      [45, -3],
      [2, 0],
      [1, 0],
      [2, 1],
    ].map((c) => Float64Array.from(c));
    const got = kernel.run(cols, 2)!;
    const f = Math.fround;
    expect(asNumbers(got.features!.data)).toEqual([
      ...[f(Math.log1p(99) / 10), f((40 - 3.5) / 2.25), 0, 0, 1, 1, 0, 1, 7],
      ...[f(Math.log1p(2) / 10), f((-2 - 3.5) / 2.25), 1, 0, 0, 0, 0, 0, -1],
    ]);
    expect(asNumbers(got.extra!.data)).toEqual([((99 - 10) / 80) * -3, 3.5, 45, ((2 - 10) / 80) * -3, 1.5, -3]);
  });

  it('refuses more rows than its arrays hold', () => {
    const kernel = compileScoringKernel(plan(), 4);
    expect(() => kernel.run(columns(5, 1, 0), 5)).toThrow('scoring kernel: 5 rows for buffers of 4');
    expect(kernel.run(columns(4, 1, 0), 4)).toBeDefined();
  });

  it('writes no model.yaml number into the generated source: constants are read from arrays', () => {
    const { source, constants } = scoringKernelSource(plan());
    expect(constants).toEqual(expect.arrayContaining([5000, 10, 40, 3.5, 2.25, 80, -3, -1]));
    for (const n of ['5000', '3.5', '2.25', '80']) expect(source).not.toContain(n);
  });
});

/** Predictions of every kind the plan compiles: picks at a stride, a sigmoid, thresholds on an output and on a field. */
function postprocessPlan(): ColumnarPlan {
  return {
    ...plan(),
    predictions: [
      {
        name: 'score',
        boolean: false,
        source: { output: 'logits', stride: 3, index: 1 },
        sigmoid: true,
        threshold: undefined,
      },
      {
        name: 'raw',
        boolean: false,
        source: { output: 'logits', stride: 3, index: 2 },
        sigmoid: false,
        threshold: undefined,
      },
      { name: 'flagged', boolean: true, source: { field: 0 }, sigmoid: false, threshold: 0.6 },
      {
        name: 'value',
        boolean: false,
        source: { output: 'value', stride: 1, index: 0 },
        sigmoid: false,
        threshold: undefined,
      },
      {
        name: 'positive',
        boolean: true,
        source: { output: 'value', stride: 1, index: 0 },
        sigmoid: true,
        threshold: 0.5,
      },
    ],
    outputNames: ['logits', 'value'],
  };
}

describe('the one-pass prediction writer', () => {
  it('writes what writePredictions writes: doubles for values, 0/1 bytes for thresholds, vector after vector', () => {
    const p = postprocessPlan();
    const writer = compilePredictionWriter(p, 2048);
    for (const [seed, rows] of [
      [1, 2048],
      [2, 333],
      [3, 1],
    ] as const) {
      const next = random(seed);
      const logits = Float32Array.from({ length: rows * 3 }, () => (next() - 0.5) * 12);
      const value = Float64Array.from({ length: rows }, (_, r) => (r % 17 === 0 ? Number.NaN : (next() - 0.5) * 8));
      const outputs = {
        logits: { type: 'float32' as const, dims: [rows, 3], data: logits },
        value: { type: 'float64' as const, dims: [rows, 1], data: value },
      };
      const expected = p.predictions.map(() => new Float64Array(rows));
      writePredictions(p, outputs, expected, 0, rows);
      const got = writer.run(outputs, rows);
      expect(got.map((c) => c.constructor)).toEqual([Float64Array, Float64Array, Uint8Array, Float64Array, Uint8Array]);
      got.forEach((column, i) =>
        expect([...column.subarray(0, rows)], p.predictions[i]!.name).toEqual([...expected[i]!]),
      );
      // Both outcomes of each threshold were seen.
      expect(new Set(got[2]!.subarray(0, rows)).size).toBe(rows > 1 ? 2 : 1);
    }
  });

  it('refuses an output that is not a float tensor, as writePredictions does', () => {
    const p = postprocessPlan();
    const outputs = {
      logits: { type: 'int32' as const, dims: [1, 3], data: Int32Array.from([1, 2, 3]) },
      value: { type: 'float64' as const, dims: [1, 1], data: Float64Array.from([0.5]) },
    };
    expect(() => compilePredictionWriter(p, 4).run(outputs, 1)).toThrow('output logits: expected a float tensor');
    expect(() => writePredictions(p, outputs, [new Float64Array(1)], 0, 1)).toThrow(
      'output logits: expected a float tensor',
    );
    expect(() => compilePredictionWriter(p, 4).run(outputs, 5)).toThrow('prediction writer: 5 rows for arrays of 4');
  });

  it('reads each output once per call and writes no model.yaml number into its source', () => {
    const { source, constants, outputs } = predictionWriterSource(postprocessPlan());
    expect(outputs).toEqual(['logits', 'value']);
    expect(constants).toEqual(expect.arrayContaining([3, 1, 2, 0.6, 0.5]));
    for (const n of ['0.6', '0.5']) expect(source).not.toContain(n);
  });
});
