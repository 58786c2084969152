import { describe, expect, it } from 'vitest';
import { CaliperError } from '../../src/errors.ts';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';
import { DynamicBatcher, type BatchRunner } from '../../src/scheduler/dynamic-batcher.ts';
import { batchingSpec as spec, rowsJob as job, tick } from '../support/batcher-requests.ts';

/** A model that doubles its input; each run waits until the test releases it (or runs at once when `auto`). */
class GatedRunner implements BatchRunner {
  batches: number[][] = [];
  private gates: (() => void)[] = [];
  constructor(public auto = false) {}

  run(feeds: TensorMap): Promise<RunResult> {
    const x = feeds.x!;
    const values = Array.from(x.data as Float32Array);
    this.batches.push(values);
    const out = new Float32Array(values.map((v) => v * 2));
    const result: RunResult = { outputs: { y: { type: 'float32', dims: [x.dims[0]!, 1], data: out } }, computeMs: 0 };
    if (this.auto) return Promise.resolve(result);
    return new Promise((resolve) => this.gates.push(() => resolve(result)));
  }

  get waiting(): number {
    return this.gates.length;
  }

  release(): void {
    this.gates.shift()?.();
  }
}

const ys = (outputs: TensorMap): number[] => Array.from(outputs.y!.data as Float32Array);

describe('DynamicBatcher', () => {
  it('batches requests arriving together and gives each its own rows back', async () => {
    const runner = new GatedRunner(true);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 2000 }), concurrency: 1 });
    const results = await Promise.all([job([1]), job([2, 3]), job([4])].map((j) => batcher.submit(j)));
    expect(runner.batches).toEqual([[1, 2, 3, 4]]);
    expect(results.map((r) => ys(r.outputs))).toEqual([[2], [4, 6], [8]]);
    expect(results.every((r) => r.batchSize === 4)).toBe(true);
    expect(batcher.batches.sizes()).toEqual([{ batchSize: 4, count: 1, computeMs: expect.any(Number) }]);
  });

  it('waits at most max_queue_delay_us for a batch that is not full', async () => {
    const runner = new GatedRunner(true);
    // A delay no loaded machine overruns between two turns of the event loop (a 20 ms one with a 5 ms sleep did, and
    // a mutation run then counted the late sleep as a kill).
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 300_000 }), concurrency: 1 });
    const started = performance.now();
    const first = batcher.submit(job([1]));
    // The pump has run and chosen to wait for company.
    await tick();
    await tick();
    expect(runner.batches).toEqual([]);
    const second = batcher.submit(job([2]));
    await Promise.all([first, second]);
    const waited = performance.now() - started;
    expect(runner.batches).toEqual([[1, 2]]);
    expect(waited).toBeGreaterThanOrEqual(299);
    expect(waited).toBeLessThan(2000);
  });

  it('leaves at once when the batch reaches the maximum or a preferred size', async () => {
    const runner = new GatedRunner(true);
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 4, preferredBatchSizes: [3], maxQueueDelayUs: 10_000_000 }),
      concurrency: 1,
    });
    const started = performance.now();
    await Promise.all([1, 2, 3].map((v) => batcher.submit(job([v]))));
    await Promise.all([job([4, 5, 6, 7])].map((j) => batcher.submit(j)));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(runner.batches).toEqual([
      [1, 2, 3],
      [4, 5, 6, 7],
    ]);
  });

  it('splits a request larger than max_batch_size and reassembles its rows in order', async () => {
    const runner = new GatedRunner(true);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 4 }), concurrency: 2 });
    const values = Array.from({ length: 10 }, (_, i) => i + 1);
    const result = await batcher.submit(job(values));
    expect(runner.batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(ys(result.outputs)).toEqual(values.map((v) => v * 2));
    expect(result.outputs.y!.dims).toEqual([10, 1]);
  });

  it('rejects at once with 503 and Retry-After when the queue is full', async () => {
    const runner = new GatedRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 1, maxQueueSize: 2 }),
      concurrency: 1,
    });
    const running = batcher.submit(job([1]));
    await tick();
    expect(runner.waiting).toBe(1);
    const queued = [batcher.submit(job([2])), batcher.submit(job([3]))];
    const error = await batcher.submit(job([4])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CaliperError);
    expect((error as CaliperError).httpStatus).toBe(503);
    expect((error as CaliperError).code).toBe('CALIPER_QUEUE_FULL');
    expect((error as CaliperError).retryAfterSeconds).toBeGreaterThan(0);
    expect(batcher.queueDepth).toBe(2);
    for (let i = 0; i < 3; i++) {
      runner.release();
      await tick();
      await tick();
    }
    expect((await Promise.all([running, ...queued])).map((r) => ys(r.outputs)[0])).toEqual([2, 4, 6]);
  });

  it('answers 504 when a deadline passes while the request is queued, without running it', async () => {
    const runner = new GatedRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 1 }), concurrency: 1 });
    const running = batcher.submit(job([1]));
    await tick();
    const started = performance.now();
    const late = batcher.submit(job([2], { deadline: performance.now() + 30 })).catch((e: unknown) => e);
    const error = await late;
    expect((error as CaliperError).httpStatus).toBe(504);
    expect(performance.now() - started).toBeLessThan(500);
    expect(batcher.queueDepth).toBe(0);
    runner.release();
    await running;
    await batcher.drain();
    expect(runner.batches).toEqual([[1]]);
  });

  it('serves higher priority levels first, FIFO within a level', async () => {
    const runner = new GatedRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 1, priorityLevels: 3 }),
      concurrency: 1,
    });
    const all = [batcher.submit(job([0]))];
    await tick();
    all.push(
      batcher.submit(job([21], { priority: 2 })),
      batcher.submit(job([11], { priority: 1 })),
      batcher.submit(job([1], { priority: 0 })),
      batcher.submit(job([22], { priority: 2 })),
      batcher.submit(job([2], { priority: 0 })),
    );
    while (runner.batches.length < 6) {
      runner.release();
      await tick();
      await tick();
    }
    runner.release();
    await Promise.all(all);
    expect(runner.batches.map((b) => b[0])).toEqual([0, 1, 2, 11, 21, 22]);
  });

  it('runs up to `concurrency` batches at once and drains', async () => {
    const runner = new GatedRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 1 }), concurrency: 2 });
    const all = [1, 2, 3].map((v) => batcher.submit(job([v])));
    await tick();
    await tick();
    expect(runner.waiting).toBe(2);
    expect(batcher.queueDepth).toBe(1);
    let drained = false;
    const drain = batcher.drain().then(() => {
      drained = true;
    });
    runner.release();
    runner.release();
    await tick();
    await tick();
    expect(drained).toBe(false);
    runner.release();
    await Promise.all([...all, drain]);
    expect(drained).toBe(true);
  });

  it('fails every request of a batch whose run fails, with a catalogue error', async () => {
    const batcher = new DynamicBatcher(
      { run: () => Promise.reject(new Error('boom')) },
      { batching: spec(), concurrency: 1 },
    );
    const errors = await Promise.all(
      [batcher.submit(job([1])), batcher.submit(job([2]))].map((p) => p.catch((e: unknown) => e)),
    );
    for (const error of errors) {
      expect((error as CaliperError).code).toBe('CALIPER_INFERENCE_FAILED');
      expect((error as CaliperError).message).toContain('boom');
    }
  });
});
