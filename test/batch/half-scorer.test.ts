import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import { columnarPlanFor } from '../../src/batch/columnar/columnar-part.ts';
import { rowRangeSql } from '../../src/batch/columnar/column-batch.ts';
import type { ColumnarPlan } from '../../src/batch/columnar/columnar-plan.ts';
import {
  closeHalfScorers,
  HalfScorer,
  isHalfScorerUnavailable,
  loadPrimedHalfScorer,
  primeSecondHalf,
  takePrimedHalfScorer,
} from '../../src/batch/columnar/half-scorer.ts';
import { OutputLayout } from '../../src/batch/io/output-layout.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot, withStderr } from './batch-fixtures.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';

/**
 * The worker thread that scores the second half of a one-pass job in halves (src/batch/columnar/half-scorer.ts,
 * half-worker.ts), driven directly: what it writes, how it fails, and the main thread taking the half back when the
 * thread cannot score.
 */
const root = tempRoot('batch-half-scorer');
let model: string;
let version: ModelVersion;
let input: string;
const scorers: HalfScorer[] = [];

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
  const generated = await generateFraudData({ rows: 20_000, out: join(root.dir, 'generated.parquet'), seed: 5 });
  // Five row groups: a file the halves cut between them (parquet-halves.ts).
  input = join(root.dir, 'in.parquet');
  await query(`COPY (SELECT * FROM read_parquet('${generated}')) TO '${input}' (FORMAT parquet, ROW_GROUP_SIZE 4000)`);
});

afterEach(async () => {
  await Promise.all(scorers.splice(0).map((s) => s.close()));
  await takePrimedHalfScorer()?.close();
  delete process.env.CALIPER_BATCH_HALVES_BYTES;
  delete process.env.CALIPER_BATCH_PROFILE;
  delete process.env.CALIPER_BATCH_SECOND_HALF_THREAD;
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

function started(): HalfScorer {
  const scorer = HalfScorer.start();
  scorers.push(scorer);
  return scorer;
}

/** Scores the input's first 100 rows on `scorer` into `target`. */
function firstRows(scorer: HalfScorer, plan: ColumnarPlan, target: string): Promise<void> {
  return scorer.score(
    plan,
    { from: rowRangeSql(plan.source, 0, 100), target, copyOptions: 'FORMAT parquet', predictionsOnly: false },
    () => undefined,
  );
}

async function planOf(output: string) {
  const spec = await planBatchJob(version, request(model, input, output));
  const plan = await columnarPlanFor(version, spec, new OutputLayout(spec), 0);
  if (!plan) throw new Error('the fraud model has a columnar plan');
  return plan;
}

describe('the second-half scorer thread', () => {
  it('scores a row range into its own file: the rows, in order, with the predictions the main thread computes', async () => {
    const plan = await planOf(join(root.dir, 'unused.parquet'));
    const scorer = started();
    scorer.load(version.pool.sessionSpec);
    const target = join(root.dir, 'range.parquet');
    const told: number[] = [];
    await scorer.score(
      plan,
      { from: rowRangeSql(plan.source, 5_000, 15_000), target, copyOptions: 'FORMAT parquet', predictionsOnly: false },
      (n) => told.push(n),
    );
    expect(told.reduce((a, b) => a + b, 0)).toBe(10_000);
    // Reports come in batches of rows, not per vector.
    expect(told.length).toBeLessThan(10_000 / 2048);
    const reference = join(root.dir, 'reference.parquet');
    const run = await runLocalBatch(
      version,
      await planBatchJob(version, request(model, input, reference)),
      silentProgress,
      {
        onePass: true,
      },
    );
    expect(run.rows).toBe(20_000);
    const [diff] = await query(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE a.fraud_probability IS DISTINCT FROM b.fraud_probability OR a.is_fraud IS DISTINCT FROM b.is_fraud)::INTEGER AS differ,
              count(*) FILTER (WHERE a.transaction_id <> a.pos + 5000)::INTEGER AS misplaced
       FROM (SELECT *, row_number() OVER () - 1 AS pos FROM read_parquet('${target}')) a JOIN read_parquet('${reference}') b USING (transaction_id)`,
    );
    expect(diff).toEqual({ n: 10_000, differ: 0, misplaced: 0 });
  }, 60_000);

  it('a score interrupted: it rejects, and the next half it is given is scored (a job whose stitched halves failed rewrites them on the same thread)', async () => {
    const plan = await planOf(join(root.dir, 'unused.parquet'));
    const scorer = started();
    scorer.load(version.pool.sessionSpec);
    const copy = (target: string) => ({
      from: rowRangeSql(plan.source, 0, 20_000),
      target: join(root.dir, target),
      copyOptions: 'FORMAT parquet',
      predictionsOnly: false,
    });
    const first = scorer.score(plan, copy('interrupted.parquet'), () => undefined);
    scorer.interrupt();
    await expect(first).rejects.toThrow(/interrupt/i);
    let rows = 0;
    await scorer.score(plan, copy('after.parquet'), (n) => {
      rows += n;
    });
    expect(rows).toBe(20_000);
    const [after] = await query(
      `SELECT count(*)::INTEGER AS n FROM read_parquet('${join(root.dir, 'after.parquet')}')`,
    );
    expect(after).toEqual({ n: 20_000 });
  }, 60_000);

  it('a model it cannot load: the score is refused as unavailable, naming the file', async () => {
    const plan = await planOf(join(root.dir, 'unused.parquet'));
    const scorer = started();
    scorer.load({ ...version.pool.sessionSpec, modelPath: join(root.dir, 'missing.onnx') });
    const scoring = firstRows(scorer, plan, join(root.dir, 'never.parquet'));
    expect(isHalfScorerUnavailable(await scoring.catch((e: unknown) => e))).toBe(true);
    await expect(scoring).rejects.toThrow(/missing\.onnx/);
  }, 60_000);

  it("a failed COPY is the COPY's error, not unavailable; closed, every later score is refused", async () => {
    const plan = await planOf(join(root.dir, 'unused.parquet'));
    const scorer = started();
    scorer.load(version.pool.sessionSpec);
    const failing = firstRows(scorer, plan, join(root.dir, 'no-such-dir', 'x.parquet'));
    await expect(failing).rejects.toThrow(/no-such-dir/);
    expect(isHalfScorerUnavailable(await failing.catch((e: unknown) => e))).toBe(false);
    await scorer.close();
    const refused = firstRows(scorer, plan, join(root.dir, 'y.parquet'));
    expect(isHalfScorerUnavailable(await refused.catch((e: unknown) => e))).toBe(true);
  }, 60_000);

  it('closed while its DuckDB opens, or as it starts: the thread ends and the process goes on', async () => {
    // Ended from outside (Worker.terminate) while DuckDB was opening (a native task on libuv's pool that answers the
    // thread when done), a thread aborted the whole process ("terminate called after throwing an instance of
    // 'Napi::Error'"): the test runner then loses this file's fork.
    for (let i = 0; i < 4; i++) {
      const scorer = HalfScorer.start();
      if (i > 0) await scorer.opening;
      await closeHalfScorers();
      expect(
        isHalfScorerUnavailable(await scorer.score({} as never, {} as never, () => undefined).catch((e) => e)),
      ).toBe(true);
    }
  }, 60_000);

  it('primed with a model it cannot load: the main thread scores the second half, the job stays on the one pass', async () => {
    process.env.CALIPER_BATCH_HALVES_BYTES = '1';
    process.env.CALIPER_BATCH_PROFILE = '1';
    // 'always': the half goes to the thread however long it takes to load, and its load fails.
    process.env.CALIPER_BATCH_SECOND_HALF_THREAD = 'always';
    primeSecondHalf(input);
    loadPrimedHalfScorer({ ...version.pool.sessionSpec, modelPath: join(root.dir, 'missing.onnx') });
    const output = join(root.dir, 'fallback.parquet');
    const { result: run, log } = await withStderr(async () =>
      runLocalBatch(version, await planBatchJob(version, request(model, input, output)), silentProgress, {
        onePass: true,
      }),
    );
    expect(log).toContain('the second on a worker thread');
    expect(log).toMatch(/could not load: .*missing\.onnx.*: the second half is scored on this thread/);
    expect(run).toMatchObject({ rows: 20_000, outputRows: 20_000, path: 'one-pass' });
    const [check] = await query(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE transaction_id <> pos)::INTEGER AS misplaced FROM (SELECT transaction_id, row_number() OVER () - 1 AS pos FROM read_parquet('${output}'))`,
    );
    expect(check).toEqual({ n: 20_000, misplaced: 0 });
    expect(readFileSync(output).subarray(0, 4).toString()).toBe('PAR1');
  }, 60_000);

  it('not ready when the halves start (auto): the main thread scores both, the thread is closed', async () => {
    process.env.CALIPER_BATCH_HALVES_BYTES = '1';
    process.env.CALIPER_BATCH_PROFILE = '1';
    // Never loaded: never ready.
    primeSecondHalf(input);
    const output = join(root.dir, 'not-ready.parquet');
    const { result: run, log } = await withStderr(async () =>
      runLocalBatch(version, await planBatchJob(version, request(model, input, output)), silentProgress, {
        onePass: true,
      }),
    );
    expect(log).toContain('scoring copy in two halves');
    expect(log).not.toContain('worker thread');
    expect(run).toMatchObject({ rows: 20_000, outputRows: 20_000, path: 'one-pass' });
    expect(takePrimedHalfScorer()).toBeUndefined();
  }, 60_000);

  it('primes nothing for an input that is not one Parquet file over the threshold, nor when told never', () => {
    process.env.CALIPER_BATCH_HALVES_BYTES = String(10 << 20);
    primeSecondHalf(input);
    expect(takePrimedHalfScorer()).toBeUndefined();
    process.env.CALIPER_BATCH_HALVES_BYTES = '1';
    primeSecondHalf(join(root.dir, 'in.csv'));
    primeSecondHalf(root.dir);
    expect(takePrimedHalfScorer()).toBeUndefined();
    process.env.CALIPER_BATCH_SECOND_HALF_THREAD = 'never';
    primeSecondHalf(input);
    expect(takePrimedHalfScorer()).toBeUndefined();
    process.env.CALIPER_BATCH_SECOND_HALF_THREAD = 'auto';
    primeSecondHalf(input);
    const primed = takePrimedHalfScorer();
    expect(primed).toBeInstanceOf(HalfScorer);
    scorers.push(primed!);
  });

  it('a malformed CALIPER_BATCH_SECOND_HALF_THREAD stops the job, naming the setting and its values', async () => {
    process.env.CALIPER_BATCH_HALVES_BYTES = '1';
    process.env.CALIPER_BATCH_SECOND_HALF_THREAD = 'yes';
    const output = join(root.dir, 'malformed.parquet');
    await expect(
      runLocalBatch(version, await planBatchJob(version, request(model, input, output)), silentProgress, {
        onePass: true,
      }),
    ).rejects.toThrow(/CALIPER_BATCH_SECOND_HALF_THREAD="yes": expected 'auto', 'always' or 'never'/);
  }, 60_000);
});
