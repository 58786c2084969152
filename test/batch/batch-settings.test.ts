import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fraudModelDir, tempRoot } from './batch-fixtures.ts';

/**
 * The numeric environment settings of `caliper batch` (src/batch/batch-settings.ts): a malformed value stops the job
 * with a message naming the variable and what it expects. Read with Number(), CALIPER_BATCH_HALVES_BYTES=8M was NaN
 * and cut even a two-row CSV in halves; CALIPER_DUCKDB_THREADS=two and CALIPER_DUCKDB_MEMORY=lots ended the job with
 * DuckDB's bare "Failed to set config".
 */
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-settings');
let model: string;
let input: string;

beforeAll(() => {
  model = fraudModelDir(root.dir);
  input = join(root.dir, 'two-rows.csv');
  writeFileSync(
    input,
    'transaction_id,transaction_amount,merchant_category,time_since_last_txn\n0,12.5,grocery,30\n1,80,travel,4000\n',
  );
});

afterAll(() => root.remove());

function batch(output: string, env: Record<string, string>) {
  const run = spawnSync(
    process.execPath,
    [CLI, 'batch', '--model', model, '--input', input, '--output', join(root.dir, output), '--json', '--no-progress'],
    { encoding: 'utf8', env: { ...process.env, CALIPER_BATCH_PROFILE: '1', ...env } },
  );
  return { status: run.status, stderr: run.stderr, halves: run.stderr.includes('scoring copy in two halves') };
}

describe('numeric batch settings from the environment', () => {
  it.each([
    ['8M', 'halves-8m.csv'],
    ['8MiB', 'halves-8mib.csv'],
    ['-1', 'halves-negative.csv'],
    ['1.5', 'halves-fraction.csv'],
  ])(
    'CALIPER_BATCH_HALVES_BYTES=%s: refused, naming the setting, nothing written',
    (value, output) => {
      const run = batch(output, { CALIPER_BATCH_HALVES_BYTES: value });
      expect(run.halves).toBe(false);
      expect(run.status).not.toBe(0);
      expect(run.stderr).toContain(`CALIPER_BATCH_HALVES_BYTES="${value}": expected a size in bytes`);
      expect(existsSync(join(root.dir, output))).toBe(false);
    },
    60_000,
  );

  it("CALIPER_BATCH_HALVES_BYTES: a size in bytes or 'off' as before", () => {
    expect(batch('halves-on.csv', { CALIPER_BATCH_HALVES_BYTES: '1' })).toMatchObject({ status: 0, halves: true });
    expect(batch('halves-big.csv', { CALIPER_BATCH_HALVES_BYTES: '8388608' })).toMatchObject({
      status: 0,
      halves: false,
    });
    expect(batch('halves-off.csv', { CALIPER_BATCH_HALVES_BYTES: 'off' })).toMatchObject({ status: 0, halves: false });
  }, 60_000);

  it('CALIPER_DUCKDB_THREADS=two: refused, naming the setting', () => {
    const run = batch('threads.csv', { CALIPER_DUCKDB_THREADS: 'two' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('CALIPER_DUCKDB_THREADS="two": expected a whole number of at least 1');
  }, 60_000);

  it('CALIPER_DUCKDB_MEMORY=lots: refused, naming the setting; 1GB works', () => {
    const run = batch('memory.csv', { CALIPER_DUCKDB_MEMORY: 'lots' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('CALIPER_DUCKDB_MEMORY="lots": DuckDB refused it as a memory limit');
    expect(batch('memory-ok.csv', { CALIPER_DUCKDB_MEMORY: '1GB' }).status).toBe(0);
    expect(readdirSync(root.dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 60_000);
});
