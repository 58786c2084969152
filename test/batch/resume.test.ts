import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const ROWS = 200_000;
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-resume');
let model: string;
let input: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  input = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.parquet'), seed: 11 });
});

afterAll(() => root.remove());

const committedParts = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir).filter((f) => /^part-.*\.(parquet|csv)$/.test(f)) : [];

/** Starts `caliper batch ARGS` and resolves once `parts` parts are committed in `partsDir` (the child still running). */
async function startUntilParts(
  args: string[],
  partsDir: string,
  parts: number,
): Promise<{ child: ReturnType<typeof spawn>; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 120_000;
  while (committedParts(partsDir).length < parts) {
    if (child.exitCode !== null) throw new Error(`batch exited early (${child.exitCode}): ${stderr}`);
    if (Date.now() > deadline) throw new Error(`no ${parts} parts committed within 120 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, exited, stderr: () => stderr };
}

describe('resume after kill -9', () => {
  it('a restarted job continues after its last committed part and the output holds every row exactly once', async () => {
    const output = join(root.dir, 'scored.parquet');
    const args = [
      CLI,
      'batch',
      '--model',
      model,
      '--input',
      input,
      '--output',
      output,
      '--chunk-rows',
      '10000',
      '--batch-size',
      '2000',
      '--json',
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (committedParts(`${output}.parts`).length < 3) {
      if (child.exitCode !== null) throw new Error(`batch exited early (${child.exitCode}): ${stderr}`);
      if (Date.now() > deadline) throw new Error('no parts committed within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe(null);
    const survived = committedParts(`${output}.parts`).length;
    expect(survived).toBeGreaterThanOrEqual(3);
    expect(survived).toBeLessThan(ROWS / 10_000);
    expect(existsSync(output)).toBe(false);

    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    const summary = JSON.parse(rerun.stdout) as { rows: number; rowsThisRun: number; outputRows: number };
    expect(summary.rows).toBe(ROWS);
    expect(summary.outputRows).toBe(ROWS);
    expect(summary.rowsThisRun).toBeLessThanOrEqual(ROWS - survived * 10_000);
    expect(summary.rowsThisRun).toBeGreaterThan(0);

    const [counts] = await query(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids, min(transaction_id)::INTEGER AS lo, max(transaction_id)::INTEGER AS hi FROM read_parquet('${output}')`,
    );
    expect(counts).toEqual({ n: ROWS, ids: ROWS, lo: 0, hi: ROWS - 1 });
    // Row order is the input's, across the parts of both runs.
    const [order] = await query(
      `SELECT count(*)::INTEGER AS misplaced FROM (SELECT transaction_id, row_number() OVER () - 1 AS position FROM read_parquet('${output}')) WHERE transaction_id <> position`,
    );
    expect(order).toEqual({ misplaced: 0 });
    expect(existsSync(`${output}.parts`)).toBe(false);
  }, 240_000);

  it('refuses to resume into an output written by a different job', async () => {
    const version = await loadBatchModel(model);
    try {
      const output = join(root.dir, 'other');
      const small = await generateFraudData({ rows: 500, out: join(root.dir, 'small.csv'), seed: 12 });
      await runLocalBatch(
        version,
        await planBatchJob(version, request(model, small, output, { keep: ['transaction_id'] })),
        silentProgress,
      );
      await expect(
        runLocalBatch(version, await planBatchJob(version, request(model, small, output)), silentProgress),
      ).rejects.toThrow(/holds another batch job .*pass --overwrite/);
    } finally {
      await version.unload();
    }
  });

  it('CSV → CSV on the columnar path: killed with -9 after some parts, the rerun continues and every row appears once, in order', async () => {
    const csv = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.csv'), seed: 13 });
    const output = join(root.dir, 'scored.csv');
    const args = [
      CLI,
      'batch',
      '--model',
      model,
      '--input',
      csv,
      '--output',
      output,
      '--chunk-rows',
      '10000',
      '--batch-size',
      '2000',
      '--json',
    ];
    const run = await startUntilParts(args, `${output}.parts`, 3);
    run.child.kill('SIGKILL');
    expect(await run.exited).toBe(null);
    const survived = committedParts(`${output}.parts`).length;
    expect(survived).toBeLessThan(ROWS / 10_000);
    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    const summary = JSON.parse(rerun.stdout) as { rows: number; rowsThisRun: number; outputRows: number };
    expect(summary).toMatchObject({ rows: ROWS, outputRows: ROWS });
    expect(summary.rowsThisRun).toBeLessThanOrEqual(ROWS - survived * 10_000);
    const [order] =
      await query(`SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids, count(*) FILTER (WHERE transaction_id <> position)::INTEGER AS misplaced
      FROM (SELECT transaction_id, row_number() OVER () - 1 AS position FROM read_csv('${output}'))`);
    expect(order).toEqual({ n: ROWS, ids: ROWS, misplaced: 0 });
  }, 240_000);

  it('Ctrl-C says how many rows are committed, where, and how to resume; the same command then finishes', async () => {
    const output = join(root.dir, 'interrupted.parquet');
    const args = [
      CLI,
      'batch',
      '--model',
      model,
      '--input',
      input,
      '--output',
      output,
      '--chunk-rows',
      '10000',
      '--batch-size',
      '2000',
      '--json',
    ];
    const run = await startUntilParts(args, `${output}.parts`, 2);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.stderr()).toMatch(
      /interrupted; [\d,]+ rows \(\d+ parts\) are committed in .*interrupted\.parquet\.parts \(job [0-9a-f]+\)\.\n {2}Run the same command again to resume after them, or add --overwrite to start over\./,
    );
    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ rows: ROWS, outputRows: ROWS });
  }, 240_000);
});
