import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { BatchQueue } from '../../src/batch/distributed/batch-queue.ts';
import { runLocalBatch, silentProgress, type BatchSummary } from '../../src/batch/batch-runner.ts';
import { runDistributedBatch } from '../../src/batch/distributed/distributed-batch.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const ROWS = 60_000;
const SHARD_ROWS = 6_000;
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-distributed');
let redis: PrivateRedis & { dispose(): Promise<void> };
let model: string;
let input: string;

interface WorkerProcess {
  child: ChildProcess;
  shards: { job: string; shard: string; rows: number; errors?: number; scorer?: string; path?: string }[];
  exited: Promise<void>;
}

/** A real `caliper worker` process; resolves once it is taking shards. */
async function startWorker(): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', '--queue', redis.url, '--lock-ms', '2000', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const worker: WorkerProcess = {
    child,
    shards: [],
    exited: new Promise((resolve) => child.once('exit', () => resolve())),
  };
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    const lines = stdout.split('\n');
    stdout = lines.pop()!;
    for (const line of lines) if (line.trim()) worker.shards.push(JSON.parse(line) as WorkerProcess['shards'][number]);
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${stderr}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('waiting for shards')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}): ${stderr}`));
    });
  });
  return worker;
}

const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redis = await startPrivateRedis();
  model = fraudModelDir(root.dir);
  input = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.parquet'), seed: 21 });
  workers.push(...(await Promise.all([startWorker(), startWorker()])));
});

afterAll(async () => {
  for (const w of workers) {
    w.child.kill('SIGKILL');
    await w.exited;
  }
  await redis?.dispose();
  root.remove();
});

async function submit(
  output: string,
  pollMs = 100,
  from = input,
  onError: 'skip' | 'fail' = 'skip',
): Promise<{ job: string; result: Promise<BatchSummary> }> {
  const version = await loadBatchModel(model);
  const spec = await planBatchJob(
    version,
    request(model, from, output, { partRows: SHARD_ROWS, batchSize: 2000, mode: 'distributed', onError }),
  );
  await version.unload();
  const result = runDistributedBatch(spec, silentProgress, { queue: redis.url, pollMs }) as Promise<BatchSummary>;
  return { job: spec.id, result };
}

/**
 * The workers' log lines of job `job`, once they name `count` distinct shards (or after 10 s): a worker logs a shard
 * after recording it, and the submitter may end on that record before the line reaches this process.
 */
async function shardsLogged(job: string, count = ROWS / SHARD_ROWS): Promise<WorkerProcess['shards']> {
  const logged = (): WorkerProcess['shards'] => workers.flatMap((w) => w.shards.filter((s) => s.job === job));
  for (const until = Date.now() + 10_000; new Set(logged().map((s) => s.shard)).size < count && Date.now() < until; )
    await new Promise((r) => setTimeout(r, 20));
  return logged();
}

async function expectExactlyOnce(output: string): Promise<void> {
  const [counts] = await query(
    `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids, min(transaction_id)::INTEGER AS lo, max(transaction_id)::INTEGER AS hi FROM read_parquet('${output}')`,
  );
  expect(counts).toEqual({ n: ROWS, ids: ROWS, lo: 0, hi: ROWS - 1 });
}

describe('caliper batch --queue with caliper worker processes over a real Redis', () => {
  it('two workers share the shards and the output holds every row exactly once', async () => {
    const output = join(root.dir, 'two-workers.parquet');
    const { job, result } = await submit(output);
    const summary = await result;
    expect(summary).toMatchObject({ rows: ROWS, outputRows: ROWS, errors: 0 });
    await expectExactlyOnce(output);
    await shardsLogged(job);
    const byWorker = workers.map((w) => w.shards.filter((s) => s.job === job).length);
    // Every shard scored; a shard whose lock lapsed on a loaded machine may be scored twice (the same part, rewritten).
    expect(new Set(workers.flatMap((w) => w.shards.filter((s) => s.job === job).map((s) => s.shard))).size).toBe(
      ROWS / SHARD_ROWS,
    );
    expect(Math.min(...byWorker)).toBeGreaterThan(0);

    const queue = new BatchQueue(redis.url);
    try {
      expect(await queue.status(job)).toMatchObject({
        state: 'completed',
        shards: ROWS / SHARD_ROWS,
        doneShards: ROWS / SHARD_ROWS,
        rows: ROWS,
        failedShards: [],
      });
    } finally {
      await queue.close();
    }
  });

  it('each clean shard is read, scored and written by one DuckDB COPY, in the columns, types and values of the parts path', async () => {
    const output = join(root.dir, 'one-pass-shards');
    const { job, result } = await submit(output);
    expect(await result).toMatchObject({ rows: ROWS, outputRows: ROWS, errors: 0 });
    const shards = await shardsLogged(job);
    expect(shards.length).toBeGreaterThanOrEqual(ROWS / SHARD_ROWS);
    expect(shards.map((s) => [s.scorer, s.path, s.rows])).toEqual(
      shards.map(() => ['columnar', 'one-pass', SHARD_ROWS]),
    );
    // The same job scored locally on the parts path (resumable parts, the columnar part writer), one part per shard.
    const local = join(root.dir, 'parts-path-shards');
    const version = await loadBatchModel(model);
    try {
      const spec = await planBatchJob(version, request(model, input, local, { partRows: SHARD_ROWS, batchSize: 2000 }));
      expect(await runLocalBatch(version, spec, silentProgress)).toMatchObject({ rows: ROWS, path: 'parts' });
    } finally {
      await version.unload();
    }
    const parts = (dir: string): string[] =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.parquet'))
        .sort();
    expect(parts(output)).toEqual(parts(local));
    expect(parts(output)).toHaveLength(ROWS / SHARD_ROWS);
    for (const part of parts(output)) {
      const describe = (dir: string) =>
        query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${join(dir, part)}'))`);
      expect(await describe(output)).toEqual(await describe(local));
      const [difference] = await query(
        `SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('${join(output, part)}') EXCEPT ALL SELECT * FROM read_parquet('${join(local, part)}')))::INTEGER AS extra, (SELECT count(*) FROM (SELECT * FROM read_parquet('${join(local, part)}') EXCEPT ALL SELECT * FROM read_parquet('${join(output, part)}')))::INTEGER AS missing`,
      );
      expect(difference).toEqual({ extra: 0, missing: 0 });
    }
    // In order within each part: the input's row order.
    const [ordered] = await query(
      `SELECT bool_and(transaction_id = expected)::BOOLEAN AS ok FROM (SELECT transaction_id, row_number() OVER () - 1 AS expected FROM read_parquet('${join(output, '*.parquet')}'))`,
    );
    expect(ordered).toEqual({ ok: true });
  });

  it('a shard holding a bad row falls back to the parts path: the row is named in the errors file, the other shards stay one-pass', async () => {
    const bad = join(root.dir, 'one-bad-row.parquet');
    await query(
      `COPY (SELECT * REPLACE (CASE WHEN transaction_id = ${SHARD_ROWS + 7} THEN -1 ELSE transaction_amount END AS transaction_amount) FROM read_parquet('${input}')) TO '${bad}' (FORMAT parquet)`,
    );
    const output = join(root.dir, 'one-bad-row-out.parquet');
    const { job, result } = await submit(output, 100, bad);
    expect(await result).toMatchObject({ rows: ROWS, outputRows: ROWS - 1, errors: 1 });
    const shards = new Map((await shardsLogged(job)).map((s) => [s.shard, s]));
    expect(shards.size).toBe(ROWS / SHARD_ROWS);
    expect(shards.get(`0:${SHARD_ROWS}`)).toMatchObject({ scorer: 'columnar', path: 'parts', errors: 1 });
    expect([...shards.values()].filter((s) => s.path === 'one-pass')).toHaveLength(ROWS / SHARD_ROWS - 1);
    const errors = readFileSync(`${output}.errors.jsonl`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // Row numbers count from 1 (the row of transaction_id SHARD_ROWS + 7 is row SHARD_ROWS + 8).
    expect(errors).toEqual([
      { file: bad, row: SHARD_ROWS + 8, reason: 'transaction_amount: expected a number >= 0, got number -1' },
    ]);
    const [counts] = await query(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE transaction_id = ${SHARD_ROWS + 7})::INTEGER AS bad FROM read_parquet('${output}')`,
    );
    expect(counts).toEqual({ n: ROWS - 1, bad: 0 });
  });

  it('a shard that fails for good fails the job at once: the submitter names the shard and the reason', async () => {
    const bad = join(root.dir, 'fail-on-bad-row.parquet');
    await query(
      `COPY (SELECT * REPLACE (CASE WHEN transaction_id = ${3 * SHARD_ROWS + 2} THEN -1 ELSE transaction_amount END AS transaction_amount) FROM read_parquet('${input}')) TO '${bad}' (FORMAT parquet)`,
    );
    const started = Date.now();
    // A ten-minute poll: only the shard's failure, heard from the queue, can end the wait within the test's limit.
    const { job, result } = await submit(join(root.dir, 'fail-on-bad-row-out.parquet'), 600_000, bad, 'fail');
    await expect(result).rejects.toThrow(
      new RegExp(
        `batch job ${job}: 1 shard\\(s\\) failed after retries; shard 0-${3 * SHARD_ROWS}: .*transaction_amount`,
      ),
    );
    expect(Date.now() - started).toBeLessThan(50_000);
  });

  it('the submitter hears each finished shard from the queue: with a ten-minute poll the job still ends as its last shard does', async () => {
    const output = join(root.dir, 'woken.parquet');
    const started = Date.now();
    const { result } = await submit(output, 600_000);
    const summary = await result;
    expect(summary).toMatchObject({ rows: ROWS, outputRows: ROWS, errors: 0 });
    // A submitter that only polled would sleep ten minutes after its first look (the test's limit is one).
    expect(Date.now() - started).toBeLessThan(50_000);
    await expectExactlyOnce(output);
  });

  it('a worker killed mid-shard loses and duplicates nothing: its shard is retried by the other', async () => {
    const output = join(root.dir, 'killed-worker.parquet');
    const { job, result } = await submit(output);
    const victim = workers[0]!;
    const deadline = Date.now() + 60_000;
    while (!victim.shards.some((s) => s.job === job)) {
      if (Date.now() > deadline) throw new Error('the worker took no shard');
      await new Promise((r) => setTimeout(r, 10));
    }
    victim.child.kill('SIGKILL');
    await victim.exited;
    const summary = await result;
    expect(summary).toMatchObject({ rows: ROWS, outputRows: ROWS });
    await expectExactlyOnce(output);
    await shardsLogged(job);
    const survivorShards = workers[1]!.shards.filter((s) => s.job === job).length;
    const victimShards = victim.shards.filter((s) => s.job === job).length;
    expect(victimShards + survivorShards).toBeGreaterThanOrEqual(ROWS / SHARD_ROWS);
  });

  it('a worker killed with -9 while writing a part into a folder output: the finished folder holds no temporary', async () => {
    const output = join(root.dir, 'killed-folder');
    const victim = await startWorker();
    workers.push(victim);
    const { result } = await submit(output);
    const ownTemporaries = (): string[] =>
      [output, join(output, '_caliper')].flatMap((dir) =>
        existsSync(dir) ? readdirSync(dir).filter((f) => f.includes(`.tmp-${victim.child.pid}-`)) : [],
      );
    // Frozen while one of its part files is half written, then killed: the temporary stays behind.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error('the worker wrote no part');
      if (ownTemporaries().length > 0) {
        victim.child.kill('SIGSTOP');
        if (ownTemporaries().length > 0) break;
        victim.child.kill('SIGCONT');
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    victim.child.kill('SIGKILL');
    await victim.exited;
    const summary = await result;
    expect(summary).toMatchObject({ rows: ROWS, outputRows: ROWS });
    expect(readdirSync(output).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(readdirSync(join(output, '_caliper')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await expectExactlyOnce(join(output, '*.parquet'));
  });

  it('a detached CSV job: workers score its shards on the columnar path, `caliper batch status JOB --queue URL` follows it, the same command without --detach finishes it', async () => {
    const csv = await generateFraudData({ rows: 12_000, out: join(root.dir, 'detached-in.csv'), seed: 23 });
    const output = join(root.dir, 'detached.csv');
    const command = [
      CLI,
      'batch',
      '--model',
      model,
      '--input',
      csv,
      '--output',
      output,
      '--queue',
      redis.url,
      '--chunk-rows',
      '3000',
      '--json',
    ];
    const submitted = spawnSync(process.execPath, [...command, '--detach'], { encoding: 'utf8' });
    expect(submitted.status, submitted.stderr).toBe(0);
    const { job } = JSON.parse(submitted.stdout) as { job: string };
    let status: { state: string; shards: number; doneShards: number; rows: number } | undefined;
    const deadline = Date.now() + 90_000;
    for (;;) {
      // The option after the job id, as a user types it (it was taken by `batch`'s own --queue before).
      const followed = spawnSync(process.execPath, [CLI, 'batch', 'status', job, '--queue', redis.url, '--json'], {
        encoding: 'utf8',
      });
      expect(followed.status, followed.stderr).toBe(0);
      status = JSON.parse(followed.stdout) as typeof status;
      if (status!.doneShards === status!.shards || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toMatchObject({ state: 'running', shards: 4, doneShards: 4, rows: 12_000 });
    // The workers' log lines arrive on this process's event loop, which spawnSync above kept blocked.
    const logged = (): WorkerProcess['shards'] => workers.flatMap((w) => w.shards.filter((s) => s.job === job));
    for (const until = Date.now() + 10_000; logged().length < 4 && Date.now() < until; )
      await new Promise((r) => setTimeout(r, 50));
    const shards = logged();
    expect(shards.length).toBeGreaterThanOrEqual(4);
    expect(shards.every((s) => s.scorer === 'columnar')).toBe(true);
    const finished = spawnSync(process.execPath, command, { encoding: 'utf8' });
    expect(finished.status, finished.stderr).toBe(0);
    expect(JSON.parse(finished.stdout)).toMatchObject({ rows: 12_000, outputRows: 12_000, errors: 0, rowsThisRun: 0 });
    const [counts] = await query(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids FROM read_csv('${output}')`,
    );
    expect(counts).toEqual({ n: 12_000, ids: 12_000 });
  });
});
