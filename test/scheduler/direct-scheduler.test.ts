import { describe, expect, it } from 'vitest';
import type { BatchingSpec } from '../../src/config/model-config.ts';
import { CaliperError } from '../../src/errors.ts';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';
import { DirectScheduler } from '../../src/scheduler/direct-scheduler.ts';
import { DynamicBatcher } from '../../src/scheduler/dynamic-batcher.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import { batchingSpec, GatedDoubler, rowsJob as job, tick } from '../support/batcher-requests.ts';

const spec = (over: Partial<BatchingSpec> = {}): BatchingSpec =>
  batchingSpec({ enabled: false, maxBatchSize: 1, ...over });

const ys = (outputs: TensorMap): number[] => Array.from(outputs.y!.data as Float32Array);

/** Both schedulers over a gated runner, one job at a time: the queue policy must answer the same either way. */
function bothSchedulers(batching: BatchingSpec): { name: string; runner: GatedDoubler; scheduler: Scheduler }[] {
  const direct = new GatedDoubler();
  const batched = new GatedDoubler();
  return [
    {
      name: 'direct',
      runner: direct,
      scheduler: new DirectScheduler(direct, { batching, concurrency: 1, model: 'm' }),
    },
    {
      name: 'batcher',
      runner: batched,
      scheduler: new DynamicBatcher(batched, { batching: { ...batching, enabled: true }, concurrency: 1, model: 'm' }),
    },
  ];
}

describe('DirectScheduler (batching off) keeps the batcher’s queue policy', () => {
  it('runs each job alone, at once while an instance is free, and gives its rows back', async () => {
    const runner = new GatedDoubler();
    const scheduler = new DirectScheduler(runner, { batching: spec(), concurrency: 2 });
    const results = [scheduler.submit(job([1, 2])), scheduler.submit(job([3]))];
    expect(runner.waiting).toBe(2);
    expect(scheduler.queueDepth).toBe(0);
    runner.release();
    runner.release();
    const [a, b] = await Promise.all(results);
    expect(ys(a!.outputs)).toEqual([2, 4]);
    expect(a!.batchSize).toBe(2);
    expect(ys(b!.outputs)).toEqual([6]);
    expect(scheduler.batches.sizes().map((s) => [s.batchSize, s.count])).toEqual([
      [1, 1],
      [2, 1],
    ]);
  });

  it('answers a full queue with the batcher’s own error (503, Retry-After), and runs the queued jobs in turn', async () => {
    const errors: CaliperError[] = [];
    for (const { runner, scheduler } of bothSchedulers(spec({ maxQueueSize: 2 }))) {
      const running = scheduler.submit(job([1]));
      await tick();
      expect(runner.waiting).toBe(1);
      const queued = [scheduler.submit(job([2])), scheduler.submit(job([3]))];
      const error = await scheduler.submit(job([4])).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CaliperError);
      errors.push(error as CaliperError);
      expect(scheduler.queueDepth).toBe(2);
      for (let i = 0; i < 3; i++) {
        runner.release();
        await tick();
        await tick();
      }
      expect((await Promise.all([running, ...queued])).map((r) => ys(r.outputs)[0])).toEqual([2, 4, 6]);
      expect(runner.runs).toEqual([[1], [2], [3]]);
    }
    const [direct, batcher] = errors;
    expect(direct!.code).toBe('CALIPER_QUEUE_FULL');
    expect(direct!.httpStatus).toBe(503);
    expect(direct!.retryAfterSeconds).toBeGreaterThan(0);
    expect([direct!.code, direct!.message, direct!.httpStatus, direct!.retryAfterSeconds]).toEqual([
      batcher!.code,
      batcher!.message,
      batcher!.httpStatus,
      batcher!.retryAfterSeconds,
    ]);
  });

  it('answers 504 when a deadline passes while the job waits, without running it; an expired deadline is refused at once', async () => {
    const runner = new GatedDoubler();
    const scheduler = new DirectScheduler(runner, { batching: spec(), concurrency: 1, model: 'm' });
    const running = scheduler.submit(job([1]));
    const started = performance.now();
    const late = await scheduler.submit(job([2], { deadline: performance.now() + 30 })).catch((e: unknown) => e);
    expect((late as CaliperError).code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect((late as CaliperError).httpStatus).toBe(504);
    expect((late as CaliperError).message).toMatch(/^model "m": deadline passed after \d+\.\d ms in the queue/);
    expect(performance.now() - started).toBeLessThan(500);
    expect(scheduler.queueDepth).toBe(0);
    const expired = await scheduler.submit(job([3], { deadline: performance.now() - 1 })).catch((e: unknown) => e);
    expect((expired as CaliperError).code).toBe('CALIPER_DEADLINE_EXCEEDED');
    runner.release();
    await running;
    await scheduler.drain();
    expect(runner.runs).toEqual([[1]]);
  });

  it('serves higher priority levels first, FIFO within a level, as the batcher does', async () => {
    const orders: number[][] = [];
    for (const { runner, scheduler } of bothSchedulers(spec({ priorityLevels: 3 }))) {
      const all = [scheduler.submit(job([0]))];
      await tick();
      all.push(
        scheduler.submit(job([21], { priority: 2 })),
        scheduler.submit(job([11], { priority: 1 })),
        scheduler.submit(job([1], { priority: 0 })),
        scheduler.submit(job([22], { priority: 2 })),
        scheduler.submit(job([2], { priority: 0 })),
      );
      while (runner.runs.length < 6) {
        runner.release();
        await tick();
        await tick();
      }
      runner.release();
      await Promise.all(all);
      orders.push(runner.runs.map((r) => r[0]!));
    }
    expect(orders[0]).toEqual([0, 1, 2, 11, 21, 22]);
    expect(orders[0]).toEqual(orders[1]);
  });

  it('drops a waiting job whose client left, answering it cancelled, and runs the rest', async () => {
    const runner = new GatedDoubler();
    const scheduler = new DirectScheduler(runner, { batching: spec(), concurrency: 1, model: 'm' });
    let gone = false;
    const running = scheduler.submit(job([1]));
    const left = scheduler.submit(job([2], { clientGone: () => gone })).catch((e: unknown) => e);
    const stays = scheduler.submit(job([3]));
    gone = true;
    runner.release();
    const error = (await left) as CaliperError;
    expect(error.code).toBe('CALIPER_CANCELLED');
    expect(error.message).toMatch(/^model "m": the client left after \d+\.\d ms in the queue/);
    await tick();
    runner.release();
    await Promise.all([running, stays]);
    expect(runner.runs).toEqual([[1], [3]]);
  });

  it('reports the time a job waited as its queue time, and fails a job whose run fails without stalling the queue', async () => {
    let fail = true;
    const runner = {
      run: (feeds: TensorMap): Promise<RunResult> =>
        fail
          ? Promise.reject(new Error('boom'))
          : Promise.resolve({ outputs: { y: feeds.x! }, computeMs: 0, finishedAt: performance.now() }),
    };
    const scheduler = new DirectScheduler(runner, { batching: spec(), concurrency: 1 });
    const failed = scheduler.submit(job([1])).catch((e: unknown) => e);
    const next = scheduler.submit(job([2]));
    expect(scheduler.queueDepth).toBe(1);
    fail = false;
    expect(((await failed) as Error).message).toBe('boom');
    const result = await next;
    expect(result.queueMs).toBeGreaterThanOrEqual(0);
    expect(ys(result.outputs)).toEqual([2]);
    await scheduler.drain();
  });
});
