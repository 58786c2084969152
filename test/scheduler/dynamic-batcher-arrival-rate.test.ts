import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';
import { DynamicBatcher, type BatchRunner } from '../../src/scheduler/dynamic-batcher.ts';
import { batchingSpec as spec, rowsJob as job, numbers, tick } from '../support/batcher-requests.ts';

/**
 * When a partly filled batch leaves at once instead of waiting for its delay: an instance is free and the recent
 * arrival rate promises fewer than one more request within the wait. The batcher's clock (performance.now()) is a
 * stepped one the test moves, so every gap between arrivals is exact; the timers stay real.
 */

let now = 1000;
beforeEach(() => {
  now = 1000;
  vi.spyOn(performance, 'now').mockImplementation(() => now);
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** A model that doubles `x` into `y`; held, each run waits until the test releases it. */
class Doubler implements BatchRunner {
  batches: number[][] = [];
  private gates: (() => void)[] = [];
  constructor(private readonly held = false) {}

  run(feeds: TensorMap): Promise<RunResult> {
    const x = feeds.x!;
    const values = Array.from(x.data as Float32Array);
    this.batches.push(values);
    const y = new Float32Array(values.map((v) => v * 2));
    const result: RunResult = { outputs: { y: { type: 'float32', dims: [x.dims[0]!, 1], data: y } }, computeMs: 0 };
    if (!this.held) return Promise.resolve(result);
    return new Promise((resolve) => this.gates.push(() => resolve(result)));
  }

  release(): void {
    this.gates.shift()?.();
  }
}

/**
 * `count` requests of `rows` rows, `gapMs` apart on the batcher's clock, each answered before the next (a preferred
 * size of `rows` sends each at once), then `gapMs` more: the next arrival comes `gapMs` after the last of them.
 */
async function spaced(batcher: DynamicBatcher, runner: Doubler, count: number, gapMs: number, rows = 2): Promise<void> {
  for (let i = 0; i < count; i++) {
    const answer = batcher.submit(job(Array.from({ length: rows }, () => -1)));
    await tick();
    runner.release();
    await answer;
    now += gapMs;
  }
}

/** Whether the batcher has sent `values` to the model by the end of its next turn. */
async function sentAtOnce(runner: Doubler, values: number[]): Promise<boolean> {
  await tick();
  return JSON.stringify(runner.batches.at(-1)) === JSON.stringify(values);
}

/** Moves the clock by `ms` and waits for the answer (the batcher's timer sees the moved clock when it fires). */
async function answerAfter<T>(ms: number, answer: Promise<T>): Promise<T> {
  now += ms;
  return answer;
}

const batcherOf = (runner: Doubler, delayUs: number, preferred = [2]) =>
  new DynamicBatcher(runner, {
    batching: spec({ maxBatchSize: 16, preferredBatchSizes: preferred, maxQueueDelayUs: delayUs }),
    concurrency: 1,
  });

describe('a lone request while an instance is free', () => {
  it('leaves at once when requests come further apart than the delay: 50 ms ÷ 150 ms = 0.33 expected', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 50_000);
    await spaced(batcher, runner, 8, 150);
    const lone = batcher.submit(job([7]));
    expect(await sentAtOnce(runner, [7])).toBe(true);
    expect((await lone).queueMs).toBe(0);
    expect(runner.batches).toHaveLength(9);
  });

  it('waits its delay when exactly one arrival is expected within it (gaps equal to the delay)', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 50_000);
    await spaced(batcher, runner, 8, 50);
    const lone = batcher.submit(job([7]));
    expect(await sentAtOnce(runner, [7])).toBe(false);
    expect((await answerAfter(50, lone)).queueMs).toBe(50);
    expect(runner.batches.at(-1)).toEqual([7]);
  });

  it('waits its delay while requests come closer together than the delay: 100 ms ÷ 20 ms = 5 expected', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 100_000);
    await spaced(batcher, runner, 8, 20);
    const lone = batcher.submit(job([7]));
    expect(await sentAtOnce(runner, [7])).toBe(false);
    // A request that comes within the delay joins it.
    now += 20;
    const companion = batcher.submit(job([8]));
    expect(await sentAtOnce(runner, [7, 8])).toBe(true);
    expect((await lone).queueMs).toBe(20);
    expect((await companion).queueMs).toBe(0);
  });

  it('waits its delay while the rate is not known: seven gaps seen, the eighth its own', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 50_000);
    await spaced(batcher, runner, 7, 150);
    const lone = batcher.submit(job([7]));
    expect(await sentAtOnce(runner, [7])).toBe(false);
    expect((await answerAfter(50, lone)).queueMs).toBe(50);
  });

  it('sends a partly filled batch at once too, not only a single request', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 50_000, [4]);
    await spaced(batcher, runner, 8, 150, 4);
    const partial = batcher.submit(job([7, 8]));
    expect(await sentAtOnce(runner, [7, 8])).toBe(true);
    expect((await partial).batchSize).toBe(2);
  });

  it('counts the arrivals expected within the wait the timer gives: 1 ms for a 100 µs delay', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 100);
    // Gaps of 0.4 ms: 2.5 arrivals expected within 1 ms, though only 0.25 within 100 µs.
    await spaced(batcher, runner, 8, 0.4);
    const lone = batcher.submit(job([7]));
    expect(await sentAtOnce(runner, [7])).toBe(false);
    expect((await answerAfter(0.1, lone)).queueMs).toBeCloseTo(0.1, 9);
  });

  it('counts only the wait left: a request that waited for a busy instance leaves once it is free', async () => {
    const runner = new Doubler(true);
    const batcher = batcherOf(runner, 50_000);
    // Gaps of 40 ms: 1.25 arrivals expected within the whole 50 ms delay, 0.5 within the 20 ms left after 30.
    await spaced(batcher, runner, 8, 40);
    const running = batcher.submit(job([1, 2]));
    expect(await sentAtOnce(runner, [1, 2])).toBe(true);
    now += 40;
    const waiting = batcher.submit(job([3]));
    // The instance is busy: the request waits, whatever the rate.
    expect(await sentAtOnce(runner, [3])).toBe(false);
    now += 30;
    runner.release();
    await running;
    await tick();
    expect(runner.batches.at(-1)).toEqual([3]);
    runner.release();
    expect((await waiting).queueMs).toBe(30);
  });

  it('learns the rate again within six arrivals after an idle spell: a long gap counts as 16 delays at most', async () => {
    const runner = new Doubler();
    const batcher = batcherOf(runner, 20_000, []);
    // Nine arrivals at once (eight gaps of 0), sent together once their delay has passed.
    const first = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => batcher.submit(job([v])));
    await tick();
    await answerAfter(20, Promise.all(first));
    now += 1000;
    // The 1 s gap counts as 320 ms: a mean gap of 40 ms, 0.5 arrivals expected within 20 ms. Back-to-back arrivals
    // then bring the mean down by 1/8 each: 35, 30.6, 26.8, 23.4, 20.5 ms (0.98 expected), 17.9 ms. Uncapped, the
    // mean would start at 127.5 ms and take fourteen arrivals.
    const atOnce: boolean[] = [];
    for (let i = 0; i < 7; i++) {
      const answer = batcher.submit(job([i]));
      const sent = await sentAtOnce(runner, [i]);
      atOnce.push(sent);
      await (sent ? answer : answerAfter(20, answer));
    }
    expect(atOnce).toEqual([true, true, true, true, true, true, false]);
  });

  it('leaves on the delay as before once the instance is busy: it never sends a second batch alongside', async () => {
    const runner = new Doubler(true);
    const batcher = batcherOf(runner, 50_000);
    await spaced(batcher, runner, 8, 150);
    const running = batcher.submit(job([1]));
    expect(await sentAtOnce(runner, [1])).toBe(true);
    const queued = batcher.submit(job([2]));
    await tick();
    expect(runner.batches).toHaveLength(9);
    runner.release();
    await running;
    await tick();
    runner.release();
    await queued;
    expect(runner.batches.slice(8)).toEqual([[1], [2]]);
    expect(numbers((await queued).outputs.y)).toEqual([4]);
  });
});
