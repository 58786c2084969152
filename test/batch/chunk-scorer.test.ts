import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { ChunkScorer, type ErrorPolicy, firstBadRowError } from '../../src/batch/chunk-scorer.ts';
import { FieldMapping } from '../../src/batch/field-mapping.ts';
import type { SourceBatch, SourceColumn, SourceRow } from '../../src/batch/io/source-row.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { fraudModelDir, tempRoot } from './batch-fixtures.ts';

// The row accounting of one chunk of a file scored through the real fraud detector (ONNX Runtime): every input row
// is either written with its own prediction, written empty (--on-error null) or left out (skip), and every bad one is
// reported once, under its row number in the file, in file order.

const root = tempRoot('chunk-scorer');
let version: ModelVersion;

beforeAll(async () => {
  version = await loadBatchModel(fraudModelDir(root.dir));
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

const typed: SourceColumn[] = ['id', 'transaction_amount', 'merchant_category', 'time_since_last_txn'].map((name) => ({
  name,
  kind: undefined,
}));
/** The same columns read from CSV: text, coerced to the model's field types (text in a number field is refused). */
const text: SourceColumn[] = typed.map((c) => ({ ...c, text: true }));

function scorer(policy: ErrorPolicy, columns: SourceColumn[] = typed): ChunkScorer {
  return new ChunkScorer(version, new FieldMapping(version.config.inputs, columns, {}), policy);
}

const good = (id: number, amount: number): SourceRow => ({
  id,
  transaction_amount: amount,
  merchant_category: id % 2 === 0 ? 'travel' : 'grocery',
  time_since_last_txn: 10 * id,
});

/** The prediction the model gives a row scored on its own (the reference a row in any chunk must get). */
async function alone(row: SourceRow): Promise<unknown> {
  const scored = await scorer('fail').score({ rows: [row], firstRow: 0 });
  expect(scored.errors).toEqual([]);
  return scored.predictions[0];
}

// Rows of one chunk starting at file row 100 (0-based): index 1 fails the request schema, index 3 was not parseable
// (the reader's error), index 4 fails the enum, index 5 is good again.
function mixedChunk(): SourceBatch {
  return {
    rows: [
      good(1, 10),
      { ...good(2, 20), transaction_amount: -5 },
      good(3, 3000),
      { id: null },
      { ...good(5, 50), merchant_category: 'casino' },
      good(6, 600),
    ],
    firstRow: 100,
    parseErrors: new Map([[3, 'invalid JSON at line 104']]),
  };
}

describe('a chunk of file rows through the pipeline', () => {
  it('with no bad row writes every row with its own prediction, in order', async () => {
    const rows = [good(1, 10), good(2, 9000), good(3, 0.5)];
    const scored = await scorer('skip').score({ rows, firstRow: 7 });
    expect(scored).toMatchObject({ inputRows: 3, errors: [] });
    expect(scored.rows).toEqual(rows);
    expect(scored.predictions).toEqual([await alone(rows[0]!), await alone(rows[1]!), await alone(rows[2]!)]);
  });

  it('skip: leaves bad rows out, keeps each good row with its own prediction, reports bad rows by file row', async () => {
    const chunk = mixedChunk();
    const scored = await scorer('skip').score(chunk);
    expect(scored.inputRows).toBe(6);
    expect(scored.rows.map((r) => r.id)).toEqual([1, 3, 6]);
    expect(scored.predictions).toEqual([
      await alone(chunk.rows[0]!),
      await alone(chunk.rows[2]!),
      await alone(chunk.rows[5]!),
    ]);
    expect(scored.errors.map((e) => e.row)).toEqual([101, 103, 104]);
    expect(scored.errors[0]!.reason).toMatch(/^transaction_amount: expected a number >= 0/);
    expect(scored.errors[1]!.reason).toBe('invalid JSON at line 104');
    expect(scored.errors[2]!.reason).toMatch(/^merchant_category: unknown category "casino"/);
  });

  it('null: writes every row in place, bad ones with a null prediction', async () => {
    const chunk = mixedChunk();
    const scored = await scorer('null').score(chunk);
    expect(scored.inputRows).toBe(6);
    expect(scored.rows).toEqual(chunk.rows);
    expect(scored.predictions).toEqual([
      await alone(chunk.rows[0]!),
      null,
      await alone(chunk.rows[2]!),
      null,
      null,
      await alone(chunk.rows[5]!),
    ]);
    expect(scored.errors.map((e) => e.row)).toEqual([101, 103, 104]);
  });

  it('fail: reports the bad rows in file order, and stops naming the file, the first one (1-based) and why', async () => {
    const scored = await scorer('fail').score(mixedChunk());
    expect(scored.errors.map((e) => e.row)).toEqual([101, 103, 104]);
    const stop = firstBadRowError('data/mixed.jsonl', scored.errors[0]!);
    expect(stop.code).toBe('CALIPER_INVALID_INPUT');
    expect(stop.message).toMatch(
      /^data\/mixed\.jsonl row 102: transaction_amount: expected a number >= 0, got .* \(--on-error fail stops at the first bad row\)$/,
    );
  });

  it('times the stages its rows went through, validate to postprocess, with or without bad rows', async () => {
    for (const scored of [
      await scorer('skip').score({ rows: [good(1, 10), good(2, 20)], firstRow: 0 }),
      await scorer('null').score(mixedChunk()),
    ]) {
      const timings = scored.timings!;
      expect(timings.total).toBeGreaterThan(0);
      for (const stage of ['validate', 'preprocess', 'queue', 'inference', 'postprocess'] as const)
        expect(timings[stage], stage).toBeGreaterThanOrEqual(0);
    }
  });

  it('an empty chunk writes nothing and reports nothing', async () => {
    for (const policy of ['skip', 'null', 'fail'] as const)
      expect(await scorer(policy).score({ rows: [], firstRow: 12 })).toEqual({
        inputRows: 0,
        rows: [],
        predictions: [],
        errors: [],
      });
  });

  it('a chunk of only bad rows writes nothing (skip) and reports each', async () => {
    const rows = [{ ...good(1, 1), transaction_amount: 'lots' }, { id: 2 }];
    const scored = await scorer('skip').score({ rows, firstRow: 40, parseErrors: new Map([[1, 'not an object']]) });
    expect(scored).toMatchObject({ inputRows: 2, rows: [], predictions: [] });
    // A chunk none of whose rows could be read reaches no stage, so none is timed.
    const unread = await scorer('skip').score({ rows: [{}], firstRow: 9, parseErrors: new Map([[0, 'invalid JSON']]) });
    expect(unread).toMatchObject({
      inputRows: 1,
      rows: [],
      predictions: [],
      errors: [{ row: 9, reason: 'invalid JSON' }],
    });
    expect(unread.timings).toBeUndefined();
    expect(scored.errors).toEqual([
      { row: 40, reason: expect.stringMatching(/^transaction_amount: expected a number >= 0, got .*lots/) },
      { row: 41, reason: 'not an object' },
    ]);
    const nulled = await scorer('null').score({ rows, firstRow: 40, parseErrors: new Map([[1, 'not an object']]) });
    expect(nulled).toMatchObject({ inputRows: 2, rows, predictions: [null, null] });
  });

  it('CSV text a number field cannot take stays text and fails that row by name; the others are typed and scored', async () => {
    const rows: SourceRow[] = [
      { id: '1', transaction_amount: '12.5', merchant_category: 'fuel', time_since_last_txn: '30' },
      { id: '2', transaction_amount: 'abc', merchant_category: 'fuel', time_since_last_txn: '30' },
      { id: '3', transaction_amount: '7', merchant_category: 'online', time_since_last_txn: '3' },
    ];
    const scored = await scorer('skip', text).score({ rows, firstRow: 0 });
    expect(scored.rows.map((r) => r.id)).toEqual(['1', '3']);
    expect(scored.predictions).toEqual([
      await alone({ transaction_amount: 12.5, merchant_category: 'fuel', time_since_last_txn: 30 }),
      await alone({ transaction_amount: 7, merchant_category: 'online', time_since_last_txn: 3 }),
    ]);
    expect(scored.errors).toEqual([
      { row: 1, reason: expect.stringMatching(/^transaction_amount: expected a number >= 0, got .*abc/) },
    ]);
  });
});
