import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';
import { type BatchRunner, DynamicBatcher } from '../../src/scheduler/dynamic-batcher.ts';
import type { InferenceResult } from '../../src/scheduler/scheduler.ts';
import { WakeupCounter } from '../support/wakeups.ts';
import {
  batchingSpec as spec,
  rowsJob as job,
  tensorJob,
  numbers,
  tick,
  sleep,
  failure,
} from '../support/batcher-requests.ts';

/**
 * More of what a client and an operator of the batcher rely on (beyond dynamic-batcher-behaviour.test.ts): drain
 * (a version swap or shutdown waits on it) ends exactly when nothing is queued or running; the batcher wakes up only
 * when something is due (one pump per burst of arrivals, one timer per wait, none for an empty queue); a request that
 * waited behind a running batch leaves when its own delay ends; priority levels are never overtaken by a lower level;
 * padded multi-row requests, requested outputs, the auto delay's latency and a failed run's cause. Every test builds
 * its own batcher and model.
 */

/**
 * A stand-in for a model's instances: outputs y = 2·(sum of x's row), z = x + 100 and w = x + 1000 (first element of
 * the row), only the ones asked for when `outputNames` is given, as ONNX Runtime answers. While `held`, a run waits
 * for release(); `reportedMs` is the inference time it reports (the instance's finishedAt), as if the model were slow.
 */
class StandIn implements BatchRunner {
  calls: { feeds: TensorMap; outputNames: string[] | undefined }[] = [];
  held = false;
  reportedMs: number | undefined;
  private gates: (() => void)[] = [];

  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult> {
    const started = performance.now();
    this.calls.push({ feeds, outputNames });
    const x = feeds.x!;
    const rows = x.dims[0]!;
    const width = x.dims.slice(1).reduce((a, b) => a * b, 1);
    const values = Array.from(x.data as ArrayLike<number | bigint>, Number);
    const all: Record<string, Float32Array> = {
      y: new Float32Array(rows),
      z: new Float32Array(rows),
      w: new Float32Array(rows),
    };
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < width; c++) sum += values[r * width + c]!;
      all.y![r] = 2 * sum;
      all.z![r] = values[r * width]! + 100;
      all.w![r] = values[r * width]! + 1000;
    }
    const outputs: TensorMap = {};
    for (const name of outputNames ?? Object.keys(all)) {
      outputs[name] = { type: 'float32', dims: [rows, 1], data: all[name]! };
    }
    const finishedAt = this.reportedMs === undefined ? undefined : started + this.reportedMs;
    const result: RunResult = { outputs, computeMs: 0, finishedAt };
    if (!this.held) return Promise.resolve(result);
    return new Promise((resolve) => this.gates.push(() => resolve(result)));
  }

  get waiting(): number {
    return this.gates.length;
  }

  release(): void {
    this.gates.shift()?.();
  }

  /** x of each run, as numbers. */
  get batches(): number[][] {
    return this.calls.map((c) => numbers(c.feeds.x));
  }
}

/** `p`'s value, or a failed test if it has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('drain', () => {
  it('resolves once the last waiting request has expired, without waiting out its batch delay', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, { batching: spec({ maxQueueDelayUs: 1_500_000 }), concurrency: 1 });
    const since = performance.now();
    const expired = failure(batcher.submit(job([1], { deadline: since + 30 })));
    await tick();
    const drained = batcher.drain().then(() => performance.now() - since);
    expect((await expired).code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect(await within(drained, 5000)).toBeLessThan(1000);
    expect(model.calls).toHaveLength(0);
  });

  it('does not resolve while a request waits for its batch delay', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, { batching: spec({ maxQueueDelayUs: 50_000 }), concurrency: 1 });
    const order: string[] = [];
    const answered = batcher.submit(job([1])).then(() => order.push('answered'));
    const drained = batcher.drain().then(() => order.push('drained'));
    await Promise.all([answered, drained]);
    expect(order).toEqual(['answered', 'drained']);
  });

  it('waits for a running batch when nothing is left in the queue', async () => {
    const model = new StandIn();
    model.held = true;
    const batcher = new DynamicBatcher(model, { batching: spec(), concurrency: 1 });
    const answered = batcher.submit(job([1]));
    await tick();
    expect(model.waiting).toBe(1);
    expect(batcher.queueDepth).toBe(0);
    let drained = false;
    const drain = batcher.drain().then(() => {
      drained = true;
    });
    await tick();
    await tick();
    expect(drained).toBe(false);
    model.release();
    expect(numbers((await answered).outputs.y)).toEqual([2]);
    await drain;
    expect(drained).toBe(true);
  });
});

describe('wake-ups', () => {
  it('forms the batch of requests that arrive together in one pump, not one per request', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, { batching: spec({ maxBatchSize: 64 }), concurrency: 1 });
    const values = Array.from({ length: 40 }, (_, i) => i);
    const counter = new WakeupCounter().start();
    try {
      await Promise.all(values.map((v) => batcher.submit(job([v]))));
    } finally {
      await counter.stop();
    }
    expect(model.batches).toEqual([values]);
    // One Immediate for the burst, one for stop(); one per request would be 40.
    expect(counter.immediates).toBeLessThanOrEqual(4);
  });

  it('waits out a batch delay on one timer, however many requests join meanwhile', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, {
      batching: spec({ maxBatchSize: 64, maxQueueDelayUs: 200_000 }),
      concurrency: 1,
    });
    const counter = new WakeupCounter().start();
    let results: InferenceResult[];
    try {
      const all = [batcher.submit(job([0]))];
      for (let i = 1; i <= 5; i++) {
        // Each arrival in its own turn of the event loop, so each pumps on its own.
        await tick();
        await tick();
        all.push(batcher.submit(job([i])));
      }
      results = await Promise.all(all);
    } finally {
      await counter.stop();
    }
    expect(model.batches).toEqual([[0, 1, 2, 3, 4, 5]]);
    expect(results[0]!.queueMs).toBeGreaterThanOrEqual(199);
    // A timer per arrival would be 6; polling by 1 ms timers, about 200.
    expect(counter.timeouts).toBeLessThanOrEqual(2);
  });

  it('arms no timer when every waiting request left before its batch formed', async () => {
    const model = new StandIn();
    model.held = true;
    const batcher = new DynamicBatcher(model, { batching: spec({ maxBatchSize: 4 }), concurrency: 1 });
    const running = batcher.submit(job([0]));
    await tick();
    let gone = false;
    const left = failure(batcher.submit(job([1], { clientGone: () => gone })));
    gone = true;
    const counter = new WakeupCounter().start();
    try {
      model.release();
      await running;
      expect((await left).code).toBe('CALIPER_CANCELLED');
      await tick();
    } finally {
      await counter.stop();
    }
    // A wait for "no request" is an infinite timer, which Node turns into a 1 ms one with a TimeoutOverflowWarning.
    expect(counter.overflows).toBe(0);
    expect(batcher.queueDepth).toBe(0);
  });

  it('sends a request that waited behind a running batch when its own delay ends, not a whole delay later', async () => {
    const model = new StandIn();
    model.held = true;
    const batcher = new DynamicBatcher(model, {
      batching: spec({ maxBatchSize: 4, maxQueueDelayUs: 500_000 }),
      concurrency: 1,
    });
    const full = batcher.submit(job([1, 2, 3, 4]));
    await tick();
    expect(model.waiting).toBe(1);
    const waiting = batcher.submit(job([5]));
    await sleep(150);
    model.held = false;
    model.release();
    await full;
    const result = await waiting;
    expect(result.queueMs).toBeGreaterThanOrEqual(499);
    // Counting a whole delay from when the model freed up would have kept it about 650 ms (+ the wait before it).
    expect(result.queueMs).toBeLessThan(720);
    expect(model.batches).toEqual([[1, 2, 3, 4], [5]]);
  });
});

describe('who batches with whom', () => {
  it('never lets a lower level join a batch past a higher-level request that could not join it', async () => {
    const model = new StandIn();
    model.held = true;
    const batcher = new DynamicBatcher(model, { batching: spec({ priorityLevels: 2 }), concurrency: 1 });
    const all = [batcher.submit(job([0]))];
    await tick();
    all.push(
      batcher.submit(job([1], { priority: 0 })),
      batcher.submit(tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([2, 2]) }, { priority: 0 })),
      batcher.submit(job([3], { priority: 1 })),
    );
    for (let turn = 0; turn < 20 && model.calls.length < 4; turn++) {
      model.release();
      await tick();
      await tick();
    }
    model.held = false;
    model.release();
    await within(Promise.all(all), 3000);
    // The level-1 request has the first one's shape, but the level-0 request between them goes first.
    expect(model.batches).toEqual([[0], [1], [2, 2], [3]]);
  });

  it('pads every row of a multi-row request to the batch’s longest row', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      padding: new Map([['x', 0]]),
    });
    const two = tensorJob({ type: 'float32', dims: [2, 2], data: new Float32Array([1, 2, 3, 4]) });
    const one = tensorJob({ type: 'float32', dims: [1, 3], data: new Float32Array([5, 6, 7]) });
    const [a, b] = await within(Promise.all([two, one].map((j) => batcher.submit(j))), 3000);
    expect(model.calls).toHaveLength(1);
    expect(model.calls[0]!.feeds.x!.dims).toEqual([3, 3]);
    expect(model.batches[0]).toEqual([1, 2, 0, 3, 4, 0, 5, 6, 7]);
    expect(numbers(a!.outputs.y)).toEqual([6, 14]);
    expect(numbers(b!.outputs.y)).toEqual([36]);
  });
});

describe('which outputs come back', () => {
  it('answers a request naming outputs that is batched behind one naming none', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const [all, named] = await within(
      Promise.all([batcher.submit(job([1])), batcher.submit(job([2], { outputNames: ['z'] }))]),
      5000,
    );
    expect(model.calls).toHaveLength(1);
    expect(model.calls[0]!.outputNames).toBeUndefined();
    expect(Object.keys(all!.outputs).sort()).toEqual(['w', 'y', 'z']);
    expect(Object.keys(named!.outputs)).toEqual(['z']);
    expect(numbers(named!.outputs.z)).toEqual([102]);
  });

  it('asks for every output when requests name as many outputs but not the same ones', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const [yz, yw] = await Promise.all([
      batcher.submit(job([1], { outputNames: ['y', 'z'] })),
      batcher.submit(job([2], { outputNames: ['y', 'w'] })),
    ]);
    expect(model.calls).toHaveLength(1);
    expect(model.calls[0]!.outputNames).toBeUndefined();
    expect(Object.keys(yz!.outputs).sort()).toEqual(['y', 'z']);
    expect(Object.keys(yw!.outputs).sort()).toEqual(['w', 'y']);
    expect(numbers(yw!.outputs.w)).toEqual([1002]);
  });
});

describe('max_queue_delay_us: auto', () => {
  it('tunes against a default budget when the model declares no sla', async () => {
    const model = new StandIn();
    const batcher = new DynamicBatcher(model, { batching: spec({ maxQueueDelayUs: 'auto' }), concurrency: 1 });
    expect(batcher.delayController).toBeDefined();
    expect(Number.isFinite(batcher.delayUs)).toBe(true);
    expect(batcher.delayUs).toBeGreaterThan(0);
    const result = await within(batcher.submit(job([1])), 5000);
    expect(numbers(result.outputs.y)).toEqual([2]);
  });

  it('counts the inference time in the latency it tunes against: a slow model shortens the delay', async () => {
    const model = new StandIn();
    model.reportedMs = 1000;
    const batcher = new DynamicBatcher(model, {
      batching: spec({ maxQueueDelayUs: 'auto', maxBatchSize: 8 }),
      concurrency: 1,
      sla: { p99Ms: 1000, windowS: 60, breachWindows: 3 },
    });
    const initial = batcher.delayUs;
    // 256 requests (one decision window) in full batches, each reported to have run for a second.
    for (let round = 0; round < 32; round++) {
      await Promise.all(Array.from({ length: 8 }, (_, i) => batcher.submit(job([i]))));
    }
    expect(batcher.delayController!.last!.p99Ms).toBeGreaterThanOrEqual(1000);
    expect(batcher.delayUs).toBeLessThan(initial);
  });
});

describe('failures', () => {
  it("keeps the model's own error as the cause of an inference failure", async () => {
    const boom = new Error('tensor shape mismatch');
    const batcher = new DynamicBatcher({ run: () => Promise.reject(boom) }, { batching: spec(), concurrency: 1 });
    const error = await failure(batcher.submit(job([1])));
    expect(error.code).toBe('CALIPER_INFERENCE_FAILED');
    expect(error.message).toContain('inference failed: tensor shape mismatch');
    expect(error.cause).toBe(boom);
  });

  it('drops every departed or expired request as the batch forms, runs the rest, and tells each how long it waited', async () => {
    const model = new StandIn();
    model.held = true;
    const batcher = new DynamicBatcher(model, { batching: spec({ maxBatchSize: 4 }), concurrency: 1, model: 'm' });
    const running = batcher.submit(job([0]));
    await tick();
    const since = performance.now();
    let gone = false;
    const left = failure(batcher.submit(job([1], { clientGone: () => gone })));
    const expired = failure(batcher.submit(job([2], { deadline: since + 40 })));
    const kept = batcher.submit(job([3]));
    // Their arrival's pump finds the model busy; the next pump is the one when the running batch ends.
    await tick();
    gone = true;
    // Keep the event loop busy past the deadline, so the batch forms before the deadline timer runs.
    while (performance.now() < since + 50) {
      /* spin */
    }
    model.held = false;
    model.release();
    await running;
    const [cancelled, late, answered] = await within(Promise.all([left, expired, kept]), 3000);
    const elapsed = performance.now() - since;
    expect(numbers(answered.outputs.y)).toEqual([6]);
    const cancelledMs = Number(/^model "m": the client left after (\d+\.\d) ms/.exec(cancelled.message)?.[1]);
    const lateMs = Number(/^model "m": deadline passed after (\d+\.\d) ms/.exec(late.message)?.[1]);
    expect(cancelledMs).toBeGreaterThanOrEqual(45);
    expect(cancelledMs).toBeLessThanOrEqual(elapsed + 1);
    expect(lateMs).toBeGreaterThanOrEqual(35);
    expect(lateMs).toBeLessThanOrEqual(elapsed + 1);
    console.log('BATCHES', JSON.stringify(model.batches));
    expect(model.batches).toEqual([[0], [3]]);
  });
});
