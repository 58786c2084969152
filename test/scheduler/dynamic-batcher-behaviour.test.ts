import { createHook } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorData, TensorMap } from '../../src/runtime/tensor.ts';
import { DynamicBatcher, type BatchRunner } from '../../src/scheduler/dynamic-batcher.ts';
import { JobQueue } from '../../src/scheduler/job-queue.ts';
import type { InferenceJob } from '../../src/scheduler/scheduler.ts';
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
 * What a client of the batcher relies on, beyond the basics of dynamic-batcher.test.ts: who batches with whom,
 * which outputs come back, when a batch leaves, and how deadlines, cancellations and priorities are honoured.
 * Every test builds its own batcher and runner: nothing carries over from one test to the next.
 */

interface RunCall {
  feeds: TensorMap;
  outputNames: string[] | undefined;
  at: number;
}

/**
 * A model with two outputs per row: `y` = 2·x (the sum of x's row for wider rows) and `z` = x + 100 (first element).
 * Each run waits until released unless `auto`; `shape` may replace the outputs (to answer unaligned ones).
 */
class RecordingRunner implements BatchRunner {
  calls: RunCall[] = [];
  private gates: (() => void)[] = [];
  constructor(
    private readonly auto = true,
    private readonly shape?: (rows: number) => TensorMap,
  ) {}

  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult> {
    this.calls.push({ feeds, outputNames, at: performance.now() });
    const x = feeds.x!;
    const rows = x.dims[0]!;
    const width = x.dims.slice(1).reduce((a, b) => a * b, 1);
    const values = Array.from(x.data as ArrayLike<number | bigint>, Number);
    const y = new Float32Array(rows);
    const z = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < width; c++) sum += values[r * width + c]!;
      y[r] = 2 * sum;
      z[r] = values[r * width]! + 100;
    }
    const outputs: TensorMap = this.shape?.(rows) ?? {
      y: { type: 'float32', dims: [rows, 1], data: y },
      z: { type: 'float32', dims: [rows, 1], data: z },
    };
    const result: RunResult = { outputs, computeMs: 0 };
    if (this.auto) return Promise.resolve(result);
    return new Promise((resolve) => this.gates.push(() => resolve(result)));
  }

  get waiting(): number {
    return this.gates.length;
  }

  release(): void {
    this.gates.shift()?.();
  }

  /** The first input of each run, as numbers, one array per run. */
  get batches(): number[][] {
    return this.calls.map((c) => Array.from(c.feeds.x!.data as ArrayLike<number | bigint>, Number));
  }
}

describe('who batches with whom', () => {
  it('never stacks requests whose trailing shapes differ; each still gets its own answer', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const wide = tensorJob({ type: 'float32', dims: [1, 3], data: new Float32Array([1, 2, 3]) });
    const narrow = tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([10, 20]) });
    const wide2 = tensorJob({ type: 'float32', dims: [1, 3], data: new Float32Array([4, 5, 6]) });
    const [a, b, c] = await Promise.all([wide, narrow, wide2].map((j) => batcher.submit(j)));
    expect(numbers(a!.outputs.y)).toEqual([12]);
    expect(numbers(b!.outputs.y)).toEqual([60]);
    expect(numbers(c!.outputs.y)).toEqual([30]);
    // First in, first out: the request behind the odd one does not jump ahead of it to join the first batch.
    expect(runner.calls.map((call) => call.feeds.x!.dims)).toEqual([
      [1, 3],
      [1, 2],
      [1, 3],
    ]);
  });

  it('never stacks requests whose element types differ', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const single = tensorJob({ type: 'float32', dims: [1, 1], data: new Float32Array([1]) });
    const double = tensorJob({ type: 'float64', dims: [1, 1], data: new Float64Array([2]) });
    const results = await Promise.all([single, double].map((j) => batcher.submit(j)));
    expect(runner.calls.map((c) => [c.feeds.x!.type, c.feeds.x!.dims[0]])).toEqual([
      ['float32', 1],
      ['float64', 1],
    ]);
    expect(results.map((r) => numbers(r.outputs.y))).toEqual([[2], [4]]);
  });

  it('never stacks requests that send different inputs', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const plain = job([1]);
    const withMask: InferenceJob = {
      inputs: { ...job([2]).inputs, mask: { type: 'float32', dims: [1, 1], data: new Float32Array([1]) } },
      rows: 1,
    };
    await Promise.all([plain, withMask].map((j) => batcher.submit(j)));
    expect(runner.calls.map((c) => Object.keys(c.feeds))).toEqual([['x'], ['x', 'mask']]);
  });

  it('never stacks requests that send different inputs, whichever arrives first', async () => {
    const x = (v: number): TensorData => ({ type: 'float32', dims: [1, 1], data: new Float32Array([v]) });
    const cases: TensorMap[][] = [
      [{ x: x(1), mask: x(1) }, { x: x(2) }],
      [
        { x: x(1), a: x(1) },
        { x: x(2), b: x(2) },
      ],
    ];
    for (const inputs of cases) {
      const runner = new RecordingRunner();
      const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
      await Promise.all(inputs.map((i) => batcher.submit({ inputs: i, rows: 1 })));
      expect(runner.calls.map((c) => Object.keys(c.feeds))).toEqual(inputs.map((i) => Object.keys(i)));
    }
  });

  it('never stacks requests whose inputs differ in rank, even where the dimensions they share agree', async () => {
    const flat = tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([1, 2]) });
    const deep = tensorJob({ type: 'float32', dims: [1, 2, 1], data: new Float32Array([3, 4]) });
    for (const jobs of [
      [flat, deep],
      [deep, flat],
    ]) {
      const runner = new RecordingRunner();
      const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
      await Promise.all(jobs.map((j) => batcher.submit(j)));
      expect(runner.calls.map((c) => c.feeds.x!.dims)).toEqual(jobs.map((j) => j.inputs.x!.dims));
    }
  });

  it('pads only a numeric [rows, length] input: a padded name on a rank-3 or string input still needs equal shapes', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      padding: new Map([['x', 0]]),
    });
    const cube = (length: number) =>
      tensorJob({ type: 'float32', dims: [1, length, 1], data: new Float32Array(length).fill(1) });
    const text = (words: string[]) => tensorJob({ type: 'string', dims: [1, words.length], data: words });
    await Promise.all(
      [cube(1), cube(2), text(['a']), text(['b', 'c']), text(['d', 'e'])].map((j) => batcher.submit(j)),
    );
    expect(runner.calls.map((c) => c.feeds.x!.dims)).toEqual([
      [1, 1, 1],
      [1, 2, 1],
      [1, 1],
      [2, 2],
    ]);
  });

  it('stacks rows of different lengths of a padded input, each padded to the longest with the pad value', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      padding: new Map([['x', -1]]),
    });
    const short = tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([1, 2]) });
    const long = tensorJob({ type: 'float32', dims: [1, 4], data: new Float32Array([3, 4, 5, 6]) });
    const [a, b] = await Promise.all([short, long].map((j) => batcher.submit(j)));
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.feeds.x!.dims).toEqual([2, 4]);
    expect(runner.batches[0]).toEqual([1, 2, -1, -1, 3, 4, 5, 6]);
    expect(numbers(a!.outputs.y)).toEqual([2 * (1 + 2 - 1 - 1)]);
    expect(numbers(b!.outputs.y)).toEqual([2 * 18]);
  });

  it('pads 64-bit integer inputs with a BigInt pad value', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      padding: new Map([['x', 0]]),
    });
    const a = tensorJob({ type: 'int64', dims: [1, 1], data: new BigInt64Array([7n]) });
    const b = tensorJob({ type: 'int64', dims: [1, 3], data: new BigInt64Array([1n, 2n, 3n]) });
    await Promise.all([a, b].map((j) => batcher.submit(j)));
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.feeds.x!.data).toEqual(new BigInt64Array([7n, 0n, 0n, 1n, 2n, 3n]));
  });

  it('pads float16 inputs with the half-precision bits of the pad value', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      padding: new Map([['x', 1]]),
    });
    const one = 0x3c00; // 1.0 as IEEE half
    const a = tensorJob({ type: 'float16', dims: [1, 1], data: new Uint16Array([one]) });
    const b = tensorJob({ type: 'float16', dims: [1, 2], data: new Uint16Array([0, 0]) });
    await Promise.all([a, b].map((j) => batcher.submit(j)));
    expect(runner.calls).toHaveLength(1);
    expect(Array.from(runner.calls[0]!.feeds.x!.data as Uint16Array)).toEqual([one, one, 0, 0]);
  });

  it('does not pad an input that is not declared padded: different lengths run apart', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      padding: new Map([['other', 0]]),
    });
    const a = tensorJob({ type: 'float32', dims: [1, 1], data: new Float32Array([1]) });
    const b = tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([1, 1]) });
    await Promise.all([a, b].map((j) => batcher.submit(j)));
    expect(runner.calls.map((c) => c.feeds.x!.dims)).toEqual([
      [1, 1],
      [1, 2],
    ]);
  });
});

describe('which outputs come back', () => {
  it('answers each request only the outputs it asked for, even when batched with a request asking for others', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const [onlyY, onlyZ, everything] = await Promise.all([
      batcher.submit(job([1], { outputNames: ['y'] })),
      batcher.submit(job([2], { outputNames: ['z'] })),
      batcher.submit(job([3])),
    ]);
    expect(runner.calls).toHaveLength(1);
    // Requests asking for different outputs: the model computes all of them.
    expect(runner.calls[0]!.outputNames).toBeUndefined();
    expect(Object.keys(onlyY!.outputs)).toEqual(['y']);
    expect(numbers(onlyY!.outputs.y)).toEqual([2]);
    expect(Object.keys(onlyZ!.outputs)).toEqual(['z']);
    expect(numbers(onlyZ!.outputs.z)).toEqual([102]);
    expect(Object.keys(everything!.outputs).sort()).toEqual(['y', 'z']);
    expect(numbers(everything!.outputs.z)).toEqual([103]);
  });

  it('answers a request naming no outputs with all of them when it is batched behind one that names some', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    const [named, all, namedAgain] = await Promise.all([
      batcher.submit(job([1], { outputNames: ['z'] })),
      batcher.submit(job([2])),
      batcher.submit(job([3], { outputNames: ['z'] })),
    ]);
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.outputNames).toBeUndefined();
    expect(Object.keys(named!.outputs)).toEqual(['z']);
    expect(Object.keys(all!.outputs).sort()).toEqual(['y', 'z']);
    expect(numbers(all!.outputs.y)).toEqual([4]);
    expect(numbers(namedAgain!.outputs.z)).toEqual([103]);
  });

  it('asks the model for just the outputs every request of the batch wants when they agree', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    await Promise.all([
      batcher.submit(job([1], { outputNames: ['z'] })),
      batcher.submit(job([2], { outputNames: ['z'] })),
    ]);
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.outputNames).toEqual(['z']);
  });

  it('asks for all outputs when requests name the same outputs in a different number', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 5000 }), concurrency: 1 });
    await Promise.all([
      batcher.submit(job([1], { outputNames: ['y'] })),
      batcher.submit(job([2], { outputNames: ['y', 'z'] })),
    ]);
    expect(runner.calls[0]!.outputNames).toBeUndefined();
  });

  it('fails every request of a batch whose output is not aligned with the batch, instead of mixing answers', async () => {
    const runner = new RecordingRunner(true, () => ({
      y: { type: 'float32', dims: [1, 1], data: new Float32Array([42]) },
    }));
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 5000 }),
      concurrency: 1,
      model: 'pooled',
    });
    const errors = await Promise.all([job([1]), job([2]), job([3])].map((j) => failure(batcher.submit(j))));
    for (const error of errors) {
      expect(error.code).toBe('CALIPER_OUTPUT_NOT_ALIGNED');
      expect(error.message).toContain('"pooled"');
      expect(error.message).toContain('"y"');
    }
    await batcher.drain();
    expect(batcher.queueDepth).toBe(0);
  });

  it('fails a lone request whose output is a scalar (no batch axis)', async () => {
    const runner = new RecordingRunner(true, () => ({ y: { type: 'float32', dims: [], data: new Float32Array([1]) } }));
    const batcher = new DynamicBatcher(runner, { batching: spec(), concurrency: 1 });
    expect((await failure(batcher.submit(job([1])))).code).toBe('CALIPER_OUTPUT_NOT_ALIGNED');
  });

  it('names the model and the cause when the run fails', async () => {
    const batcher = new DynamicBatcher(
      { run: () => Promise.reject('socket closed') },
      { batching: spec(), concurrency: 1, model: 'fraud' },
    );
    const error = await failure(batcher.submit(job([1])));
    expect(error.code).toBe('CALIPER_INFERENCE_FAILED');
    expect(error.message).toBe('model "fraud": inference failed: socket closed');
  });
});

describe('when a batch leaves', () => {
  it('cuts a batch down to the largest preferred size that fits, leaving the rest for the next batch', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 16, preferredBatchSizes: [2, 4], maxQueueDelayUs: 30_000 }),
      concurrency: 1,
    });
    const results = await Promise.all([1, 2, 3, 4, 5].map((v) => batcher.submit(job([v]))));
    expect(runner.batches).toEqual([[1, 2, 3, 4], [5]]);
    expect(results.map((r) => r.batchSize)).toEqual([4, 4, 4, 4, 1]);
    expect(results.map((r) => numbers(r.outputs.y)[0])).toEqual([2, 4, 6, 8, 10]);
  });

  it('cuts at request boundaries: a batch never exceeds the preferred size it was cut to', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 16, preferredBatchSizes: [3], maxQueueDelayUs: 30_000 }),
      concurrency: 1,
    });
    await Promise.all([job([1, 2]), job([3, 4]), job([5])].map((j) => batcher.submit(j)));
    expect(runner.batches[0]).toEqual([1, 2]);
    expect(runner.batches.flat().sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('with cut_to_preferred false, a batch that reached a preferred size takes every waiting row', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 16, preferredBatchSizes: [2, 4], cutToPreferred: false, maxQueueDelayUs: 30_000 }),
      concurrency: 1,
    });
    const results = await Promise.all([1, 2, 3, 4, 5].map((v) => batcher.submit(job([v]))));
    expect(runner.batches).toEqual([[1, 2, 3, 4, 5]]);
    expect(results.map((r) => r.batchSize)).toEqual([5, 5, 5, 5, 5]);
    expect(results.map((r) => numbers(r.outputs.y)[0])).toEqual([2, 4, 6, 8, 10]);
  });

  it('with cut_to_preferred false, a batch still takes no more than max_batch_size rows, whole requests only', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 5, preferredBatchSizes: [2], cutToPreferred: false, maxQueueDelayUs: 30_000 }),
      concurrency: 1,
    });
    const results = await Promise.all([job([1, 2]), job([3]), job([4, 5]), job([6, 7])].map((j) => batcher.submit(j)));
    expect(runner.batches).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7],
    ]);
    expect(results.map((r) => r.batchSize)).toEqual([5, 5, 5, 2]);
    expect(results.map((r) => numbers(r.outputs.y))).toEqual([[2, 4], [6], [8, 10], [12, 14]]);
  });

  it('with cut_to_preferred false, rows short of every preferred size still wait for the delay', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 16, preferredBatchSizes: [4], cutToPreferred: false, maxQueueDelayUs: 5_000_000 }),
      concurrency: 1,
    });
    const waiting = [1, 2, 3].map((v) => batcher.submit(job([v])));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(runner.batches).toEqual([]);
    expect(batcher.queueDepth).toBe(3);
    const results = await Promise.all([...waiting, batcher.submit(job([4, 5]))]);
    expect(runner.batches).toEqual([[1, 2, 3, 4, 5]]);
    expect(results.map((r) => r.batchSize)).toEqual([5, 5, 5, 5]);
  });

  it('sends a request larger than the preferred size at once rather than waiting for the delay', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 16, preferredBatchSizes: [2], maxQueueDelayUs: 5_000_000 }),
      concurrency: 1,
    });
    const started = performance.now();
    const result = await batcher.submit(job([1, 2, 3]));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(result.batchSize).toBe(3);
    expect(runner.batches).toEqual([[1, 2, 3]]);
  });

  it('sends a full batch at once, and the request that did not fit waits for its own batch', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 4, maxQueueDelayUs: 500_000 }),
      concurrency: 1,
    });
    const started = performance.now();
    const first = batcher.submit(job([1, 2, 3]));
    const second = batcher.submit(job([4, 5]));
    const firstDone = await first.then(() => performance.now() - started);
    const secondDone = await second.then(() => performance.now() - started);
    expect(runner.batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    expect(firstDone).toBeLessThan(400);
    expect(secondDone).toBeGreaterThanOrEqual(495);
  });

  it('sends a batch of exactly max_batch_size rows at once', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 3, maxQueueDelayUs: 5_000_000 }),
      concurrency: 1,
    });
    const started = performance.now();
    await Promise.all([job([1]), job([2, 3])].map((j) => batcher.submit(j)));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(runner.batches).toEqual([[1, 2, 3]]);
  });

  it('does not hold a batch back for a request of another shape queued behind it', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 8, maxQueueDelayUs: 500_000 }),
      concurrency: 1,
    });
    const started = performance.now();
    const first = batcher.submit(job([1]));
    batcher.submit(tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([1, 1]) }));
    await first;
    expect(performance.now() - started).toBeLessThan(400);
    await batcher.drain();
  });

  it('wakes a partly filled batch when its oldest request has waited the delay, without further arrivals', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 40_000 }), concurrency: 1 });
    const started = performance.now();
    const result = await batcher.submit(job([1]));
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(39);
    expect(waited).toBeLessThan(1000);
    expect(result.queueMs).toBeGreaterThanOrEqual(39);
    expect(batcher.delayUs).toBe(40_000);
  });

  it('counts the delay from the oldest request: a later arrival does not restart the wait', async () => {
    const runner = new RecordingRunner();
    // 250 ms of slack between the sleep and the delay: a loaded machine's late timer must not split the batch.
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 400_000 }), concurrency: 1 });
    const first = batcher.submit(job([1]));
    await sleep(150);
    const [a, b] = await Promise.all([first, batcher.submit(job([2]))]);
    expect(runner.batches).toEqual([[1, 2]]);
    expect(a!.queueMs).toBeGreaterThanOrEqual(399);
    // Restarting the wait for the newcomer would have kept it a whole delay (400 ms) in the queue.
    expect(b!.queueMs).toBeLessThan(380);
  });

  it('holds each request at least a sub-millisecond delay', async () => {
    const runner = new RecordingRunner();
    // A fresh batcher for each lone request: its arrival rate is unknown, so it waits the delay (one batcher would
    // learn that its lone requests come further apart than the delay and send them at once:
    // dynamic-batcher-arrival-rate.test.ts).
    for (let i = 0; i < 20; i++) {
      const batcher = new DynamicBatcher(runner, { batching: spec({ maxQueueDelayUs: 300 }), concurrency: 1 });
      expect((await batcher.submit(job([i]))).queueMs).toBeGreaterThanOrEqual(0.3);
    }
    expect(runner.calls).toHaveLength(20);
  });

  it('waits for a sub-millisecond delay on a timer, without spinning the event loop', async () => {
    // Each turn of a polling wait schedules an Immediate: count them while lone requests wait out their delay.
    let immediates = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === 'Immediate') immediates++;
      },
    });
    const runner = new RecordingRunner();
    // A fresh batcher for each lone request, so that each waits out its delay (an unknown arrival rate).
    const batchers = Array.from(
      { length: 10 },
      () =>
        new DynamicBatcher(runner, {
          batching: spec({ maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelayUs: 900 }),
          concurrency: 1,
        }),
    );
    hook.enable();
    try {
      for (const [i, batcher] of batchers.entries())
        expect((await batcher.submit(job([i]))).queueMs).toBeGreaterThanOrEqual(0.9);
    } finally {
      hook.disable();
    }
    expect(runner.calls).toHaveLength(10);
    // One Immediate per arrival (the pump after its I/O phase); polling made hundreds per wait.
    expect(immediates).toBeLessThanOrEqual(20);
  });

  it('starts the next batch as soon as a running one finishes, within the concurrency', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 2 }), concurrency: 1 });
    const all = [1, 2, 3, 4, 5].map((v) => batcher.submit(job([v])));
    await tick();
    await tick();
    expect(runner.waiting).toBe(1);
    expect(batcher.queueDepth).toBe(3);
    runner.release();
    await all[0];
    await tick();
    expect(runner.waiting).toBe(1);
    expect(batcher.queueDepth).toBe(1);
    runner.release();
    await tick();
    await tick();
    runner.release();
    await Promise.all(all);
    expect(runner.batches).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('reports the queue time and the batch size of the batch that ran each request', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 4 }), concurrency: 1 });
    const first = batcher.submit(job([1]));
    await tick();
    const queued = [batcher.submit(job([2])), batcher.submit(job([3, 4]))];
    await sleep(30);
    runner.release();
    await first;
    await tick();
    runner.release();
    const [a, b] = await Promise.all(queued);
    expect(a!.batchSize).toBe(3);
    expect(b!.batchSize).toBe(3);
    expect(a!.queueMs).toBeGreaterThanOrEqual(29);
    expect(a!.inferenceMs).toBeGreaterThanOrEqual(0);
    expect(numbers(b!.outputs.y)).toEqual([6, 8]);
    expect(batcher.batches.sizes().map((s) => [s.batchSize, s.count])).toEqual([
      [1, 1],
      [3, 1],
    ]);
  });
});

describe('timing', () => {
  it('times a batch until the instance reported its outputs ready, not until the answer was handled', async () => {
    let started = 0;
    const batcher = new DynamicBatcher(
      {
        run: async () => {
          started = performance.now();
          return {
            outputs: { y: { type: 'float32', dims: [1, 1], data: new Float32Array([1]) } },
            computeMs: 0,
            finishedAt: started + 1000,
          } satisfies RunResult;
        },
      },
      { batching: spec(), concurrency: 1 },
    );
    const result = await batcher.submit(job([1]));
    expect(result.inferenceMs).toBeGreaterThanOrEqual(1000);
    expect(result.inferenceMs).toBeLessThan(1500);
    expect(batcher.batches.sizes()).toEqual([{ batchSize: 1, count: 1, computeMs: result.inferenceMs }]);
  });
});

describe('large requests', () => {
  it('splits a request larger than max_batch_size, and reports the slowest part and largest batch', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 3 }), concurrency: 1 });
    const result = await batcher.submit(job([1, 2, 3, 4, 5, 6, 7]));
    expect(runner.batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(numbers(result.outputs.y)).toEqual([2, 4, 6, 8, 10, 12, 14]);
    expect(numbers(result.outputs.z)).toEqual([101, 102, 103, 104, 105, 106, 107]);
    expect(result.batchSize).toBe(3);
    expect(result.queueMs).toBeGreaterThanOrEqual(0);
  });

  it('reports a split request as waiting and running as long as its slowest part', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 2 }), concurrency: 1 });
    const whole = batcher.submit(job([1, 2, 3, 4, 5]));
    for (let part = 0; part < 3; part++) {
      while (runner.waiting === 0) await tick();
      await sleep(25);
      runner.release();
    }
    const result = await whole;
    expect(runner.batches).toEqual([[1, 2], [3, 4], [5]]);
    // The last part waited for the two before it (about 50 ms); each part ran about 25 ms.
    expect(result.queueMs).toBeGreaterThanOrEqual(49);
    expect(result.inferenceMs).toBeGreaterThanOrEqual(24);
    expect(result.batchSize).toBe(2);
  });

  it('runs a request of exactly max_batch_size rows in one piece', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 3 }), concurrency: 1 });
    await batcher.submit(job([1, 2, 3]));
    expect(runner.batches).toEqual([[1, 2, 3]]);
  });
});

describe('deadlines, departures and the queue bound', () => {
  it('answers 504 at once, without queuing, a request whose deadline has already passed', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec(), concurrency: 1, model: 'm' });
    for (const deadline of [performance.now() - 5, performance.now()]) {
      const error = await failure(batcher.submit(job([1], { deadline })));
      expect(error.code).toBe('CALIPER_DEADLINE_EXCEEDED');
      expect(error.httpStatus).toBe(504);
      expect(error.message).toContain('model "m": deadline passed after 0.0 ms in the queue');
    }
    expect(batcher.queueDepth).toBe(0);
    await batcher.drain();
    expect(runner.calls).toHaveLength(0);
  });

  it('expires each queued request at its own deadline, re-arming for the next, while the model is busy', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 1 }), concurrency: 1 });
    const running = batcher.submit(job([0]));
    await tick();
    const started = performance.now();
    // The later deadline arrives first: the earlier one must re-arm the timer, and the later one be re-armed after it.
    const late = failure(batcher.submit(job([2], { deadline: started + 400 }))).then((e) => ({
      e,
      at: performance.now() - started,
    }));
    const early = failure(batcher.submit(job([1], { deadline: started + 30 }))).then((e) => ({
      e,
      at: performance.now() - started,
    }));
    const patient = batcher.submit(job([3]));
    const first = await early;
    expect(first.e.code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect(first.at).toBeLessThan(350);
    expect(batcher.queueDepth).toBe(2);
    const second = await late;
    expect(second.e.code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect(second.at).toBeGreaterThanOrEqual(395);
    expect(second.at).toBeLessThan(3000);
    expect(second.e.message).toMatch(/deadline passed after \d+\.\d ms in the queue/);
    expect(batcher.queueDepth).toBe(1);
    runner.release();
    await running;
    await tick();
    runner.release();
    expect(numbers((await patient).outputs.y)).toEqual([6]);
    expect(runner.batches).toEqual([[0], [3]]);
  });

  it('drops a request whose deadline passed in the queue when the batch is formed, and runs the others', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 4 }), concurrency: 1 });
    const running = batcher.submit(job([0]));
    await tick();
    const now = performance.now();
    const expired = failure(batcher.submit(job([1], { deadline: now + 15 })));
    const kept = batcher.submit(job([2], { deadline: now + 60_000 }));
    // Keep the event loop busy past the deadline so the batch is formed before the deadline timer runs.
    while (performance.now() < now + 25) {
      /* spin */
    }
    runner.release();
    await running;
    await tick();
    runner.release();
    expect((await expired).code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect(numbers((await kept).outputs.y)).toEqual([4]);
    expect(runner.batches).toEqual([[0], [2]]);
  });

  it('drops a queued request whose client left, answering it cancelled, and runs the rest', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 4 }), concurrency: 1, model: 'm' });
    const running = batcher.submit(job([0]));
    await tick();
    let gone = false;
    const left = failure(batcher.submit(job([1], { clientGone: () => gone })));
    const stays = batcher.submit(job([2], { clientGone: () => false }));
    gone = true;
    runner.release();
    await running;
    await tick();
    runner.release();
    const error = await left;
    expect(error.code).toBe('CALIPER_CANCELLED');
    expect(error.message).toMatch(/^model "m": the client left after \d+\.\d ms in the queue/);
    expect(numbers((await stays).outputs.y)).toEqual([4]);
    expect(runner.batches).toEqual([[0], [2]]);
    expect(batcher.queueDepth).toBe(0);
  });

  it('counts only waiting requests against max_queue_size, and frees a place when one leaves', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 1, maxQueueSize: 1 }),
      concurrency: 1,
      model: 'm',
    });
    const running = batcher.submit(job([0]));
    await tick();
    const queued = batcher.submit(job([1]));
    const refused = await failure(batcher.submit(job([2])));
    expect(refused.code).toBe('CALIPER_QUEUE_FULL');
    expect(refused.message).toContain('model "m": queue is full (1 requests waiting');
    runner.release();
    await running;
    await tick();
    expect(batcher.queueDepth).toBe(0);
    const accepted = batcher.submit(job([3]));
    runner.release();
    await queued;
    await tick();
    runner.release();
    expect(numbers((await accepted).outputs.y)).toEqual([6]);
  });

  it('drain waits for queued and running requests, and resolves at once when idle', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 1 }), concurrency: 1 });
    await batcher.drain();
    const all = [batcher.submit(job([1])), batcher.submit(job([2]))];
    let drained = false;
    const drain = batcher.drain().then(() => {
      drained = true;
    });
    await tick();
    runner.release();
    await all[0];
    await tick();
    expect(drained).toBe(false);
    runner.release();
    await Promise.all([...all, drain]);
    expect(drained).toBe(true);
  });

  it('wakes drain when the last queued request expires rather than runs', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, { batching: spec({ maxBatchSize: 1 }), concurrency: 1 });
    const running = batcher.submit(job([0]));
    await tick();
    const expiring = failure(batcher.submit(job([1], { deadline: performance.now() + 20 })));
    runner.release();
    await running;
    // The model is idle again but the expiring request ran; drain still resolves once nothing is left.
    await tick();
    runner.release();
    await expiring.catch(() => undefined);
    await batcher.drain();
    expect(batcher.queueDepth).toBe(0);
  });
});

describe('priorities', () => {
  it('serves a priority above the highest level at the lowest level, a negative or fractional one by its level', async () => {
    const runner = new RecordingRunner(false);
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 1, priorityLevels: 2 }),
      concurrency: 1,
    });
    const all = [batcher.submit(job([0]))];
    await tick();
    all.push(
      batcher.submit(job([9], { priority: 9 })),
      batcher.submit(job([1], { priority: 1 })),
      batcher.submit(job([5], { priority: 0.9 })),
      batcher.submit(job([-1], { priority: -3 })),
    );
    while (runner.calls.length < 5) {
      runner.release();
      await tick();
      await tick();
    }
    runner.release();
    await Promise.all(all);
    expect(runner.batches.map((b) => b[0])).toEqual([0, 5, -1, 9, 1]);
  });

  it('batches requests of different levels together, the higher level first', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxBatchSize: 8, priorityLevels: 2, maxQueueDelayUs: 5000 }),
      concurrency: 1,
    });
    await Promise.all([
      batcher.submit(job([1], { priority: 1 })),
      batcher.submit(job([2], { priority: 0 })),
      batcher.submit(job([3], { priority: 1 })),
    ]);
    expect(runner.batches).toEqual([[2, 1, 3]]);
  });

  it('treats zero priority levels as one level', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ priorityLevels: 0 }),
      concurrency: 0,
    });
    const result = await batcher.submit(job([4], { priority: 3 }));
    expect(numbers(result.outputs.y)).toEqual([8]);
  });
});

describe('max_queue_delay_us: auto', () => {
  it('starts from a delay within the SLA budget and serves requests', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 'auto' }),
      concurrency: 1,
      sla: { p99Ms: 20, windowS: 60, breachWindows: 3 },
    });
    expect(batcher.delayController).toBeDefined();
    expect(batcher.delayUs).toBeGreaterThanOrEqual(0);
    expect(batcher.delayUs).toBeLessThanOrEqual(20_000);
    const result = await batcher.submit(job([1]));
    expect(numbers(result.outputs.y)).toEqual([2]);
  });

  it('lengthens the delay while batches leave half empty on the timer and the p99 has room', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 'auto', maxBatchSize: 8 }),
      concurrency: 1,
      // A budget no request comes near even on a loaded machine (a loaded machine's p99 here exceeded 100 ms).
      sla: { p99Ms: 10_000, windowS: 60, breachWindows: 3 },
    });
    const initial = batcher.delayUs;
    for (let i = 0; i < 256; i++) await batcher.submit(job([i]));
    expect(batcher.delayUs).toBeGreaterThan(initial);
    expect(batcher.delayController!.last!.meanBatchFill).toBe(1 / 8);
  });

  it('does not lengthen the delay when batches leave at a preferred size (they were not waiting for company)', async () => {
    const runner = new RecordingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ maxQueueDelayUs: 'auto', maxBatchSize: 8, preferredBatchSizes: [1] }),
      concurrency: 1,
      // Room in the budget even on a loaded machine, so only the full batches keep the delay where it was.
      sla: { p99Ms: 10_000, windowS: 60, breachWindows: 3 },
    });
    const initial = batcher.delayUs;
    for (let i = 0; i < 256; i++) await batcher.submit(job([i]));
    expect(batcher.delayUs).toBe(initial);
    expect(batcher.delayController!.last!.meanBatchFill).toBe(1);
  });

  it('has no delay controller with a fixed delay', () => {
    const batcher = new DynamicBatcher(new RecordingRunner(), {
      batching: spec({ maxQueueDelayUs: 700 }),
      concurrency: 1,
    });
    expect(batcher.delayController).toBeUndefined();
    expect(batcher.delayUs).toBe(700);
  });
});

describe('JobQueue', () => {
  it('is first in, first out across many pushes and shifts, with its length kept', () => {
    const queue = new JobQueue<number>();
    expect(queue.shift()).toBeUndefined();
    for (let i = 0; i < 3000; i++) queue.push(i);
    const out: number[] = [];
    for (let i = 0; i < 2500; i++) out.push(queue.shift()!);
    expect(out).toEqual(Array.from({ length: 2500 }, (_, i) => i));
    expect(queue.length).toBe(500);
    expect(queue.peek()).toBe(2500);
    expect(queue.peek(499)).toBe(2999);
    expect(queue.peek(500)).toBeUndefined();
    for (let i = 3000; i < 3100; i++) queue.push(i);
    expect([...queue]).toEqual(Array.from({ length: 600 }, (_, i) => 2500 + i));
    while (queue.length > 0) queue.shift();
    expect(queue.shift()).toBeUndefined();
    expect([...queue]).toEqual([]);
    queue.push(7);
    expect(queue.peek()).toBe(7);
    expect(queue.length).toBe(1);
  });

  it('removes the items a predicate selects and keeps the others in order', () => {
    const queue = new JobQueue<number>();
    for (let i = 0; i < 10; i++) queue.push(i);
    queue.shift();
    expect(queue.removeWhere((n) => n % 3 === 0)).toEqual([3, 6, 9]);
    expect([...queue]).toEqual([1, 2, 4, 5, 7, 8]);
    expect(queue.length).toBe(6);
    expect(queue.removeWhere(() => false)).toEqual([]);
    expect([...queue]).toEqual([1, 2, 4, 5, 7, 8]);
    expect(queue.shift()).toBe(1);
  });
});
