import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { runLocalBatch, type BatchProgress } from '../../src/batch/batch-runner.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { loadFraudModel, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-prediction-parts');
let version: ModelVersion;

beforeAll(async () => {
  version = await loadFraudModel(root.dir);
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

/** A progress that lists the parts folder and the manifest folder each time a batch is scored. */
function watching(partsDir: string): BatchProgress & { seen: Set<string> } {
  const seen = new Set<string>();
  const look = (dir: string): void => {
    if (existsSync(dir)) for (const f of readdirSync(dir)) seen.add(f);
  };
  return {
    seen,
    start() {},
    advance() {
      look(partsDir);
      look(join(partsDir, '_caliper'));
    },
    stop() {},
  };
}

describe('an output assembled at the end: inputs read in place, parts hold only predictions', () => {
  it('CSV → CSV: the CSV is never staged as Parquet, each committed part holds just the predictions, and the output has every row once, in order', async () => {
    const input = await generateFraudData({ rows: 5000, out: join(root.dir, 'in.csv'), seed: 21 });
    const output = join(root.dir, 'scored.csv');
    const spec = await planBatchJob(version, request(version.config.dir, input, output, { partRows: 1000 }));
    const progress = watching(spec.partsDir);
    const summary = await runLocalBatch(version, spec, progress);
    expect(summary).toMatchObject({ rows: 5000, outputRows: 5000, errors: 0 });
    // No staged copy of the input; the parts are Parquet files of predictions, whatever the output format.
    expect([...progress.seen].filter((f) => f.startsWith('input-'))).toEqual([]);
    const parts = [...progress.seen].filter((f) => /^part-\d{5}-\d{12}\.\w+$/.test(f));
    expect(parts.length).toBeGreaterThanOrEqual(3);
    expect(parts.every((f) => f.endsWith('.parquet'))).toBe(true);
    const [check] = await query(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE transaction_id <> position)::INTEGER AS misplaced, count(*) FILTER (WHERE fraud_probability IS NULL)::INTEGER AS unscored FROM (SELECT *, row_number() OVER () - 1 AS position FROM read_csv('${output}'))`,
    );
    expect(check).toEqual({ n: 5000, misplaced: 0, unscored: 0 });
    expect(existsSync(spec.partsDir)).toBe(false);
  });

  it('a committed part holds the outcome and prediction columns only, no input column', async () => {
    const input = await generateFraudData({ rows: 3000, out: join(root.dir, 'columns.parquet'), seed: 22 });
    const spec = await planBatchJob(
      version,
      request(version.config.dir, input, join(root.dir, 'stopped.parquet'), { partRows: 1000 }),
    );
    const part = join(spec.partsDir, 'part-00000-000000000000.parquet');
    // Stopped once the first part is committed, so its file stays for the next run to resume from.
    const stopping: BatchProgress = {
      start() {},
      advance() {
        if (existsSync(part)) throw new Error('stop here');
      },
      stop() {},
    };
    await expect(runLocalBatch(version, spec, stopping)).rejects.toThrow(/stop here/);
    const schema = await query(`DESCRIBE SELECT * FROM read_parquet('${part}')`);
    expect(schema.map((c) => c.column_name)).toEqual(['__caliper_outcome', '__caliper_p0', '__caliper_p1']);
    const [rows] = await query(`SELECT count(*)::INTEGER AS n FROM read_parquet('${part}')`);
    expect(rows).toEqual({ n: 1000 });
  });

  it('--on-error null: a bad row in one 2048-row chunk of a part leaves the rows of the next chunks scored (prediction columns copied into DuckDB chunk by chunk, with their null masks)', async () => {
    const path = join(root.dir, 'nulls.csv');
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 5000; i++) lines.push(`${i},${i === 10 || i === 2100 ? -5 : (i % 500) + 1},grocery,${i % 90}`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    const output = join(root.dir, 'nulls-out.parquet');
    const summary = await runLocalBatch(
      version,
      await planBatchJob(version, request(version.config.dir, path, output, { partRows: 4096, onError: 'null' })),
      { start() {}, advance() {}, stop() {} },
    );
    expect(summary).toMatchObject({ rows: 5000, outputRows: 5000, errors: 2 });
    const [check] = await query(
      `SELECT count(*) FILTER (WHERE fraud_probability IS NULL)::INTEGER AS unscored, count(*) FILTER (WHERE is_fraud IS NULL)::INTEGER AS undecided, list(transaction_id ORDER BY transaction_id) FILTER (WHERE fraud_probability IS NULL)::VARCHAR AS ids FROM read_parquet('${output}')`,
    );
    expect(check).toEqual({ unscored: 2, undecided: 2, ids: '[10, 2100]' });
  });

  it('CSV rows that take the row path in several parts and chunks: each read whole by one forward-only second read, its reason and row number kept, every other row scored once', async () => {
    const path = join(root.dir, 'bad-rows.csv');
    const bad = new Map([
      [10, 'ten'],
      [2100, 'many'],
      [2101, 'more'],
      [4999, 'last'],
    ]);
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 5000; i++) lines.push(`${i},${(i % 500) + 1},grocery,${bad.get(i) ?? i % 90}`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    const output = join(root.dir, 'bad-rows-out.csv');
    const summary = await runLocalBatch(
      version,
      await planBatchJob(version, request(version.config.dir, path, output, { partRows: 1000 })),
      { start() {}, advance() {}, stop() {} },
    );
    expect(summary).toMatchObject({ rows: 5000, outputRows: 4996, errors: 4 });
    const [check] = await query(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids, count(*) FILTER (WHERE transaction_id IN (10, 2100, 2101, 4999))::INTEGER AS bad FROM read_csv('${output}')`,
    );
    expect(check).toEqual({ n: 4996, ids: 4996, bad: 0 });
    const errors = await query(`SELECT "row"::INTEGER AS "row", reason FROM read_json('${output}.errors.jsonl')`);
    expect(errors.map((e) => e.row)).toEqual([11, 2101, 2102, 5000]);
    [...bad.values()].forEach((word, k) => expect(String(errors[k]!.reason)).toContain(word));
  });

  it('a CSV whose number column holds a word past the type sniffer sample: staged when the reader refuses it, scored once, the word an error row', async () => {
    const path = join(root.dir, 'late-word.csv');
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 40_000; i++) lines.push(`${i},${i === 30_000 ? 'lots' : (i % 500) + 1},grocery,${i % 90}`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    const output = join(root.dir, 'late-word-out.csv');
    const summary = await runLocalBatch(
      version,
      await planBatchJob(version, request(version.config.dir, path, output, { partRows: 8192, batchSize: 4096 })),
      { start() {}, advance() {}, stop() {} },
    );
    expect(summary).toMatchObject({ rows: 40_000, outputRows: 39_999, errors: 1 });
    const [check] = await query(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids, count(*) FILTER (WHERE transaction_id = 30000)::INTEGER AS bad FROM read_csv('${output}')`,
    );
    expect(check).toEqual({ n: 39_999, ids: 39_999, bad: 0 });
    const errors = await query(`SELECT "row"::INTEGER AS "row", reason FROM read_json('${output}.errors.jsonl')`);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.row).toBe(30_001);
    expect(String(errors[0]!.reason)).toContain('lots');
  });
});
