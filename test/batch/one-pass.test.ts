import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { runLocalBatch, type BatchProgress } from '../../src/batch/batch-runner.ts';
import { fraudModelDir, loadFraudModel, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

/**
 * The one-pass path (src/batch/columnar/scoring-copy.ts): without --chunk-rows, a clean input whose output is one file
 * (or --partition-by folders) is read, scored and written by one DuckDB COPY calling the model from inside the query.
 * Each test compares it with the parts path (the same command with --chunk-rows), which stays the reference.
 */
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-one-pass');
let model: string;

beforeAll(() => {
  model = fraudModelDir(root.dir);
});

afterAll(() => root.remove());

interface Summary {
  rows: number;
  outputRows: number;
  errors: number;
  rowsThisRun: number;
  path: string;
}

function batch(args: string[], nodeOptions: string[] = []): Summary {
  const run = spawnSync(
    process.execPath,
    [...nodeOptions, CLI, 'batch', '--model', model, '--json', '--overwrite', ...args],
    { encoding: 'utf8' },
  );
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Summary;
}

const temporaries = (dir: string): string[] => readdirSync(dir).filter((f) => f.includes('.tmp-'));

describe('caliper batch in one pass', () => {
  it('CSV → CSV: one COPY writes the same bytes as the parts path, every row once and in input order, over several files', async () => {
    const dir = join(root.dir, 'csv-in');
    // Three files, read in name order and written one after the other (a UNION ALL of three scoring SELECTs).
    for (const [i, seed] of [21, 22, 23].entries())
      await generateFraudData({ rows: 7_000 + i * 1_000, out: join(dir, `part-${i}.csv`), seed });
    const onePass = join(root.dir, 'one-pass.csv');
    const parts = join(root.dir, 'parts.csv');
    expect(batch(['--input', dir, '--output', onePass])).toMatchObject({
      rows: 24_000,
      outputRows: 24_000,
      errors: 0,
      rowsThisRun: 24_000,
      path: 'one-pass',
    });
    expect(batch(['--input', dir, '--output', parts, '--chunk-rows', '5000'])).toMatchObject({
      rows: 24_000,
      path: 'parts',
    });
    expect(readFileSync(onePass, 'utf8')).toBe(readFileSync(parts, 'utf8'));
    const [order] = await query(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE transaction_id <> position)::INTEGER AS misplaced FROM (SELECT transaction_id, row_number() OVER () - 1 - CASE WHEN row_number() OVER () <= 7000 THEN 0 WHEN row_number() OVER () <= 15000 THEN 7000 ELSE 15000 END AS position FROM read_csv('${onePass}'))`,
    );
    expect(order).toEqual({ n: 24_000, misplaced: 0 });
    // Nothing of the job is left beside the output: no parts folder, no errors file, no temporary.
    expect(readdirSync(root.dir).filter((f) => f.startsWith('one-pass'))).toEqual(['one-pass.csv']);
  }, 120_000);

  it('where Node forbids code generation, the scoring function runs the generic loops: one pass, the same bytes', async () => {
    const input = await generateFraudData({ rows: 5_000, out: join(root.dir, 'no-codegen.csv'), seed: 31 });
    const compiled = join(root.dir, 'compiled.csv');
    const generic = join(root.dir, 'generic.csv');
    expect(batch(['--input', input, '--output', compiled]).path).toBe('one-pass');
    expect(batch(['--input', input, '--output', generic], ['--disallow-code-generation-from-strings'])).toMatchObject({
      rows: 5_000,
      outputRows: 5_000,
      path: 'one-pass',
    });
    expect(readFileSync(generic, 'utf8')).toBe(readFileSync(compiled, 'utf8'));
  }, 120_000);

  it('Parquet → Parquet: every prediction field of the STRUCT comes out as its own column, typed as the parts path types it', async () => {
    const input = await generateFraudData({ rows: 10_000, out: join(root.dir, 'in.parquet'), seed: 24 });
    const onePass = join(root.dir, 'one-pass.parquet');
    const parts = join(root.dir, 'parts.parquet');
    expect(batch(['--input', input, '--output', onePass]).path).toBe('one-pass');
    expect(batch(['--input', input, '--output', parts, '--chunk-rows', '3000']).path).toBe('parts');
    const describeOf = async (file: string): Promise<string> =>
      JSON.stringify(
        await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${file}'))`),
      );
    expect(await describeOf(onePass)).toBe(await describeOf(parts));
    expect(await describeOf(onePass)).toContain('"column_name":"fraud_probability","column_type":"DOUBLE"');
    expect(await describeOf(onePass)).toContain('"column_name":"is_fraud","column_type":"BOOLEAN"');
    const [diff] = await query(
      `SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('${onePass}') EXCEPT ALL SELECT * FROM read_parquet('${parts}')))::INTEGER AS extra,
              (SELECT count(*) FROM read_parquet('${onePass}'))::INTEGER AS n,
              (SELECT count(*) FILTER (WHERE is_fraud <> (fraud_probability > 0.7)) FROM read_parquet('${onePass}'))::INTEGER AS inconsistent`,
    );
    expect(diff).toEqual({ extra: 0, n: 10_000, inconsistent: 0 });
  }, 120_000);

  it('a file with rows the model rejects takes the parts path: each error row keeps its row number and reason', () => {
    const input = join(root.dir, 'dirty.csv');
    const lines = ['transaction_id,transaction_amount,merchant_category,time_since_last_txn'];
    for (let i = 0; i < 5_000; i++) lines.push(`${i},${(i % 97) + 1},grocery,${i % 50}`);
    lines[3_001] = '3000,-5,grocery,10'; // below minimum 0
    lines[4_501] = '4500,12,casino,10'; // not in the enum
    writeFileSync(input, `${lines.join('\n')}\n`);
    const output = join(root.dir, 'dirty-scored.csv');
    expect(batch(['--input', input, '--output', output])).toMatchObject({
      rows: 5_000,
      outputRows: 4_998,
      errors: 2,
      path: 'parts',
    });
    const errors = readFileSync(`${output}.errors.jsonl`, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { row: number; reason: string });
    expect(errors.map((e) => e.row)).toEqual([3_001, 4_501]);
    expect(errors[0]!.reason).toMatch(/transaction_amount/);
    expect(errors[1]!.reason).toMatch(/merchant_category/);
  }, 120_000);

  it('--partition-by: the same folders and rows as the parts path', async () => {
    const input = await generateFraudData({ rows: 6_000, out: join(root.dir, 'to-partition.parquet'), seed: 25 });
    const onePass = join(root.dir, 'by-category-one-pass');
    const parts = join(root.dir, 'by-category-parts');
    expect(
      batch(['--input', input, '--output', onePass, '--format', 'parquet', '--partition-by', 'is_fraud']).path,
    ).toBe('one-pass');
    expect(
      batch([
        '--input',
        input,
        '--output',
        parts,
        '--format',
        'parquet',
        '--partition-by',
        'is_fraud',
        '--chunk-rows',
        '2000',
      ]).path,
    ).toBe('parts');
    expect(readdirSync(onePass).sort()).toEqual(readdirSync(parts).sort());
    const [diff] = await query(
      `SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('${onePass}/**/*.parquet', hive_partitioning = true) EXCEPT ALL SELECT * FROM read_parquet('${parts}/**/*.parquet', hive_partitioning = true)))::INTEGER AS extra,
              (SELECT count(*) FROM read_parquet('${onePass}/**/*.parquet'))::INTEGER AS n`,
    );
    expect(diff).toEqual({ extra: 0, n: 6_000 });
  }, 120_000);

  it('a model on worker-thread instances keeps the parts path (inference there cannot answer a vector synchronously)', async () => {
    const input = await generateFraudData({ rows: 3_000, out: join(root.dir, 'for-workers.parquet'), seed: 26 });
    expect(batch(['--input', input, '--output', join(root.dir, 'workers.parquet'), '--instances', '2'])).toMatchObject({
      rows: 3_000,
      path: 'parts',
    });
  }, 120_000);

  it('progress is told every scored vector (at most 2048 rows each), adding up to the rows', async () => {
    const input = await generateFraudData({ rows: 9_000, out: join(root.dir, 'progress.parquet'), seed: 27 });
    const version = await loadFraudModel(root.dir);
    try {
      const advances: number[] = [];
      const progress: BatchProgress = {
        start() {},
        advance(rows, errors) {
          expect(errors).toBe(0);
          advances.push(rows);
        },
        stop() {},
      };
      const spec = await planBatchJob(version, request(model, input, join(root.dir, 'progress-out.parquet')));
      const summary = await runLocalBatch(version, spec, progress, { onePass: true });
      expect(summary).toMatchObject({ rows: 9_000, outputRows: 9_000, path: 'one-pass' });
      expect(advances.reduce((a, b) => a + b, 0)).toBe(9_000);
      expect(Math.max(...advances)).toBeLessThanOrEqual(2048);
      expect(advances.length).toBeGreaterThanOrEqual(5);
    } finally {
      await version.unload();
    }
  }, 120_000);

  it('frees the copies of its vector reads as it goes: a young-generation collection every 16 vectors', async () => {
    const input = await generateFraudData({ rows: 140_000, out: join(root.dir, 'collect.parquet'), seed: 29 });
    const version = await loadFraudModel(root.dir);
    const minor: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries())
        if (
          (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ===
          constants.NODE_PERFORMANCE_GC_MINOR
        )
          minor.push(entry.startTime);
    });
    try {
      let vectors = 0;
      const progress: BatchProgress = { start() {}, advance: () => void vectors++, stop() {} };
      const spec = await planBatchJob(version, request(model, input, join(root.dir, 'collect-out.parquet')));
      observer.observe({ entryTypes: ['gc'] });
      const started = performance.now();
      const summary = await runLocalBatch(version, spec, progress, { onePass: true });
      const ended = performance.now();
      // GC entries are delivered after the collection: let them arrive.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(summary).toMatchObject({ rows: 140_000, path: 'one-pass' });
      expect(vectors).toBeGreaterThanOrEqual(69);
      // Left to V8, a job this small allocates too little to collect its young generation more than once or twice.
      expect(minor.filter((t) => t >= started && t <= ended).length).toBeGreaterThanOrEqual(Math.floor(vectors / 16));
    } finally {
      observer.disconnect();
      await version.unload();
    }
  }, 120_000);
});

describe('a one-pass job stopped midway', () => {
  const ROWS = 400_000;
  let input: string;
  beforeAll(async () => {
    input = await generateFraudData({ rows: ROWS, out: join(root.dir, 'long.csv'), seed: 28 });
  });

  /** Starts the job and resolves once its COPY is writing (the output's temporary exists), the child still running. */
  async function startWriting(output: string): Promise<{
    child: ReturnType<typeof spawn>;
    exited: Promise<number | null>;
    stderr: () => string;
  }> {
    const child = spawn(
      process.execPath,
      [CLI, 'batch', '--model', model, '--input', input, '--output', output, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    const prefix = `.${output.split('/').pop()!}.tmp-`;
    while (!readdirSync(root.dir).some((f) => f.startsWith(prefix))) {
      if (child.exitCode !== null) throw new Error(`batch exited before writing (${child.exitCode}): ${stderr}`);
      if (Date.now() > deadline) throw new Error('the one-pass COPY never started writing within 120 s');
      await new Promise((r) => setTimeout(r, 5));
    }
    return { child, exited, stderr: () => stderr };
  }

  const checkOutput = async (output: string): Promise<void> => {
    const [order] = await query(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids, count(*) FILTER (WHERE transaction_id <> position)::INTEGER AS misplaced FROM (SELECT transaction_id, row_number() OVER () - 1 AS position FROM read_csv('${output}'))`,
    );
    expect(order).toEqual({ n: ROWS, ids: ROWS, misplaced: 0 });
  };

  it('killed with -9 while writing: the rerun starts over, and the output holds every row once, in order, with no temporary left', async () => {
    const output = join(root.dir, 'killed.csv');
    const run = await startWriting(output);
    run.child.kill('SIGKILL');
    expect(await run.exited).toBe(null);
    expect(existsSync(output)).toBe(false);
    const rerun = spawnSync(
      process.execPath,
      [CLI, 'batch', '--model', model, '--input', input, '--output', output, '--json'],
      {
        encoding: 'utf8',
      },
    );
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({
      rows: ROWS,
      outputRows: ROWS,
      rowsThisRun: ROWS,
      path: 'one-pass',
    });
    await checkOutput(output);
    expect(temporaries(root.dir)).toEqual([]);
  }, 240_000);

  it('Ctrl-C while writing: exits 130 at once, says nothing is committed, that a rerun starts over and --chunk-rows resumes, leaves no temporary', async () => {
    const output = join(root.dir, 'interrupted.csv');
    const run = await startWriting(output);
    run.child.kill('SIGINT');
    const code = await Promise.race([run.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
    if (code === 'hung') run.child.kill('SIGKILL');
    expect(code, run.stderr()).toBe(130);
    expect(run.stderr()).toMatch(
      /interrupted before anything was committed \(job [0-9a-f]+\); running the same command again starts it over\./,
    );
    expect(run.stderr()).toMatch(
      /Without --chunk-rows a job is scored in one pass where it can, committing only at its end; add --chunk-rows N to make it resumable in parts of N rows\./,
    );
    // A one-pass job has nothing to resume after: the message must not promise it.
    expect(run.stderr()).not.toMatch(/resume after|are committed in/);
    expect(existsSync(output)).toBe(false);
    expect(temporaries(root.dir)).toEqual([]);
    const rerun = spawnSync(
      process.execPath,
      [CLI, 'batch', '--model', model, '--input', input, '--output', output, '--json'],
      {
        encoding: 'utf8',
      },
    );
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ rows: ROWS, outputRows: ROWS, path: 'one-pass' });
    await checkOutput(output);
  }, 240_000);
});
