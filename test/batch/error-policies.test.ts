import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-errors');
let version: ModelVersion;
let model: string;
let input: string;
let csvInput: string;

// Rows 2, 4, 5, 6, 7 and 9 (1-based) are bad, each in its own way.
const LINES = [
  JSON.stringify({ id: 1, transaction_amount: 10, merchant_category: 'fuel', time_since_last_txn: 30 }),
  JSON.stringify({ id: 2, transaction_amount: null, merchant_category: 'fuel', time_since_last_txn: 30 }),
  JSON.stringify({ id: 3, transaction_amount: 99.5, merchant_category: 'online', time_since_last_txn: 3 }),
  JSON.stringify({ id: 4, transaction_amount: 'lots', merchant_category: 'fuel', time_since_last_txn: 30 }),
  JSON.stringify({ id: 5, transaction_amount: 10, merchant_category: 'casino', time_since_last_txn: 30 }),
  '{"id": 6, "transaction_amount": 10,',
  '[1, 2, 3]',
  JSON.stringify({ id: 8, transaction_amount: 10, merchant_category: 'gaming', time_since_last_txn: 1 }),
  JSON.stringify({ id: 9, merchant_category: 'gaming', time_since_last_txn: 1 }),
  JSON.stringify({ id: 10, transaction_amount: 1, merchant_category: 'grocery', time_since_last_txn: 100 }),
];
const BAD = [2, 4, 5, 6, 7, 9];

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
  input = join(root.dir, 'mixed.jsonl');
  writeFileSync(input, `${LINES.join('\n')}\n`);
  csvInput = join(root.dir, 'mixed.csv');
  writeFileSync(
    csvInput,
    'id,transaction_amount,merchant_category,time_since_last_txn\n1,10,fuel,30\n2,,fuel,30\n3,abc,fuel,30\n4,5,"grocery",-2\n5,5,online,7\n',
  );
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('--on-error', () => {
  it('skip: leaves bad rows out and lists each with its row number and reason', async () => {
    const output = join(root.dir, 'skip.jsonl');
    const spec = await planBatchJob(
      version,
      request(model, input, output, { batchSize: 3, partRows: 4, onError: 'skip' }),
    );
    const summary = await runLocalBatch(version, spec, silentProgress);
    expect(summary).toMatchObject({ rows: 10, outputRows: 4, errors: 6 });
    expect(readJsonl(output).map((r) => r.id)).toEqual([1, 3, 8, 10]);
    const errors = readJsonl(`${output}.errors.jsonl`);
    expect(errors.map((e) => e.row)).toEqual(BAD);
    const reasons = errors.map((e) => e.reason as string);
    expect(reasons[0]).toMatch(/^transaction_amount: expected a number >= 0, got null/);
    expect(reasons[1]).toMatch(/^transaction_amount: expected a number >= 0, got .*lots/);
    expect(reasons[2]).toMatch(/^merchant_category: unknown category "casino"/);
    expect(reasons[3]).toMatch(/^invalid JSON/);
    expect(reasons[4]).toMatch(/^expected a JSON object per line, got an array/);
    // Read as columns, a key missing from a line is null in that row.
    expect(reasons[5]).toMatch(/^transaction_amount: expected a number >= 0, got null/);
  });

  it('null: writes every row, bad ones with empty prediction fields', async () => {
    const output = join(root.dir, 'null.parquet');
    const spec = await planBatchJob(
      version,
      request(model, input, output, { batchSize: 4, onError: 'null', keep: ['id'] }),
    );
    const summary = await runLocalBatch(version, spec, silentProgress);
    expect(summary).toMatchObject({ rows: 10, outputRows: 10, errors: 6 });
    const rows = await query(`SELECT id, fraud_probability, is_fraud FROM read_parquet('${output}')`);
    expect(rows.map((r) => Number(r.id))).toEqual(
      [1, 2, 3, 4, 5, null, null, 8, 9, 10].map((v) => (v === null ? 0 : v)),
    );
    const nulls = rows.flatMap((r, i) => (r.fraud_probability === null ? [i + 1] : []));
    expect(nulls).toEqual(BAD);
    expect(rows.filter((r) => r.fraud_probability !== null).every((r) => typeof r.is_fraud === 'boolean')).toBe(true);
  });

  it('fail: stops at the first bad row, naming the file, the row and the reason', async () => {
    const output = join(root.dir, 'fail.jsonl');
    const spec = await planBatchJob(version, request(model, input, output, { onError: 'fail' }));
    await expect(runLocalBatch(version, spec, silentProgress)).rejects.toThrow(
      /mixed\.jsonl row 2: transaction_amount: expected a number >= 0, got null \(--on-error fail/,
    );
    expect(existsSync(output)).toBe(false);
  });

  it('CSV text is typed by the model: empty is null, text in a number field is an error naming the text', async () => {
    const output = join(root.dir, 'csv-skip.csv');
    const spec = await planBatchJob(version, request(model, csvInput, output));
    const summary = await runLocalBatch(version, spec, silentProgress);
    expect(summary).toMatchObject({ rows: 5, outputRows: 2, errors: 3 });
    const errors = readJsonl(`${output}.errors.jsonl`);
    expect(errors.map((e) => [e.row, e.reason])).toEqual([
      [2, 'transaction_amount: expected a number >= 0, got null'],
      [3, expect.stringMatching(/^transaction_amount: expected a number >= 0, got .*abc/)],
      [4, expect.stringMatching(/^time_since_last_txn: expected a number >= 0, got number -2/)],
    ]);
    expect(readFileSync(output, 'utf8').split('\n')[0]).toBe(
      'id,transaction_amount,merchant_category,time_since_last_txn,fraud_probability,is_fraud',
    );
  });
});
