import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import { duckdbConnection, openDuckdbOnOneThread } from '../../src/batch/io/duckdb-engine.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { fraudModelDir, planBatchJob, request, tempRoot } from './batch-fixtures.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';

/**
 * `caliper batch` opens DuckDB on one thread for a job it will likely score in one pass (cli/batch.ts,
 * src/batch/io/duckdb-engine.ts openDuckdbOnOneThread): the one pass then neither lowers nor restores the thread count,
 * and a job that leaves it (a row for the row path, an output folder of parts) gets the configured threads back.
 * This file's process opens its DuckDB here first, as the CLI does (each test file has its own modules).
 */
const root = tempRoot('batch-one-thread');
let model: string;
let version: ModelVersion;
let input: string;

async function duckdbThreads(): Promise<number> {
  const connection = await duckdbConnection();
  try {
    return (await connection.runAndReadAll(`SELECT current_setting('threads')::INTEGER`)).getRows()[0]![0] as number;
  } finally {
    connection.closeSync();
  }
}

beforeAll(async () => {
  process.env.CALIPER_DUCKDB_THREADS = '3';
  openDuckdbOnOneThread();
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
  input = await generateFraudData({ rows: 5_000, out: join(root.dir, 'in.parquet'), seed: 9 });
});

afterAll(async () => {
  delete process.env.CALIPER_DUCKDB_THREADS;
  await version.unload();
  root.remove();
});

describe('DuckDB opened on one thread for a one-pass job', () => {
  it('the one pass leaves it on one thread', async () => {
    const spec = await planBatchJob(version, request(model, input, join(root.dir, 'out.parquet')));
    expect(await runLocalBatch(version, spec, silentProgress, { onePass: true })).toMatchObject({
      rows: 5_000,
      path: 'one-pass',
    });
    expect(await duckdbThreads()).toBe(1);
  }, 60_000);

  it('a job that leaves the one pass (a row for the row path) gets the configured threads back', async () => {
    const dirty = join(root.dir, 'dirty.csv');
    writeFileSync(
      dirty,
      'transaction_id,transaction_amount,merchant_category,time_since_last_txn\n1,10,grocery,5\n2,-3,grocery,5\n',
    );
    const spec = await planBatchJob(version, request(model, dirty, join(root.dir, 'dirty-out.csv')));
    expect(await runLocalBatch(version, spec, silentProgress, { onePass: true })).toMatchObject({
      rows: 2,
      errors: 1,
      path: 'parts',
    });
    expect(await duckdbThreads()).toBe(3);
  }, 60_000);
});
