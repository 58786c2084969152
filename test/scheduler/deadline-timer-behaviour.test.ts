import { describe, expect, it } from 'vitest';
import type { BatchingSpec } from '../../src/config/model-config.ts';
import type { CaliperError } from '../../src/errors.ts';
import { DirectScheduler } from '../../src/scheduler/direct-scheduler.ts';
import { DynamicBatcher } from '../../src/scheduler/dynamic-batcher.ts';
import type { InferenceJob, Scheduler } from '../../src/scheduler/scheduler.ts';
import { idleFor, WakeupCounter } from '../support/wakeups.ts';
import { batchingSpec, GatedDoubler } from '../support/batcher-requests.ts';

/**
 * Per-request deadlines while the model is busy (timeout_ms, x-caliper-timeout-ms, grpc-timeout): a queued request is
 * answered 504 at its own deadline, whatever arrives after it, with the time it really waited, and the scheduler
 * waits for deadlines on one timer, without polling, and stops waking up once none is left. Batching on (the dynamic
 * batcher) or off (the direct scheduler) answers the same: both keep their deadlines in the one DeadlineTimer.
 */

const batching: BatchingSpec = batchingSpec({ maxBatchSize: 1 });

const SCHEDULERS: { name: string; make: (model: GatedDoubler) => Scheduler }[] = [
  { name: 'batching on', make: (model) => new DynamicBatcher(model, { batching, concurrency: 1, model: 'm' }) },
  { name: 'batching off', make: (model) => new DirectScheduler(model, { batching, concurrency: 1, model: 'm' }) },
];

const job = (value: number, over: Partial<InferenceJob> = {}): InferenceJob => ({
  inputs: { x: { type: 'float32', dims: [1, 1], data: new Float32Array([value]) } },
  rows: 1,
  ...over,
});

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Refusal {
  error: CaliperError;
  /** Milliseconds after `since` when the request was answered. */
  at: number;
}

/** The error a request is answered with and when; fails the test if it is not answered within `limitMs`. */
async function refusal(answer: Promise<unknown>, since: number, limitMs = 3000): Promise<Refusal> {
  const outcome = answer.then(
    () => {
      throw new Error('expected the request to be refused');
    },
    (error: unknown) => ({ error: error as CaliperError, at: performance.now() - since }),
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not answered within ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([outcome, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The time a 504 says the request waited in the queue, ms. */
const waitedMs = (error: CaliperError): number =>
  Number(/deadline passed after (\d+\.\d) ms in the queue/.exec(error.message)?.[1] ?? Number.NaN);

describe.each(SCHEDULERS)('deadlines while the model is busy ($name)', ({ make }) => {
  it('answers a queued request 504 at its own deadline, though a later deadline arrives after it', async () => {
    const model = new GatedDoubler();
    const scheduler = make(model);
    const running = scheduler.submit(job(0));
    await tick();
    const since = performance.now();
    const early = refusal(scheduler.submit(job(1, { deadline: since + 30 })), since);
    const late = refusal(scheduler.submit(job(2, { deadline: since + 300 })), since);
    const first = await early;
    expect(first.error.code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect(first.error.httpStatus).toBe(504);
    // At its own deadline, not at the later one that arrived after it.
    expect(first.at).toBeLessThan(250);
    expect(scheduler.queueDepth).toBe(1);
    const second = await late;
    expect(second.error.code).toBe('CALIPER_DEADLINE_EXCEEDED');
    expect(second.at).toBeGreaterThanOrEqual(295);
    expect(scheduler.queueDepth).toBe(0);
    model.release();
    await running;
    await scheduler.drain();
    expect(model.runs).toEqual([[0]]);
  });

  it('says how long the request waited: from its arrival to its deadline', async () => {
    const model = new GatedDoubler();
    const scheduler = make(model);
    const running = scheduler.submit(job(0));
    await tick();
    const since = performance.now();
    const expired = await refusal(scheduler.submit(job(1, { deadline: since + 40 })), since);
    expect(expired.error.message).toMatch(/^model "m": deadline passed after \d+\.\d ms in the queue/);
    expect(waitedMs(expired.error)).toBeGreaterThanOrEqual(35);
    expect(waitedMs(expired.error)).toBeLessThanOrEqual(expired.at + 1);
    model.release();
    await running;
  });

  it('waits for a deadline on one timer, and keeps no timer once no deadline is left', async () => {
    const model = new GatedDoubler();
    const scheduler = make(model);
    const running = scheduler.submit(job(0));
    await tick();
    const counter = new WakeupCounter().start();
    let during = 0;
    let after = 0;
    try {
      const since = performance.now();
      const expired = await refusal(scheduler.submit(job(1, { deadline: since + 80 })), since);
      expect(expired.error.code).toBe('CALIPER_DEADLINE_EXCEEDED');
      // refusal's own guard is one timer.
      during = counter.timeouts - 1;
      await idleFor(40);
      after = counter.timeouts - 1 - during;
    } finally {
      await counter.stop();
    }
    // Polling to the deadline would have made a timer per millisecond; a timer re-armed for "no deadline" one per
    // millisecond after it, each with a TimeoutOverflowWarning.
    expect(during).toBeLessThanOrEqual(3);
    expect(after).toBeLessThanOrEqual(2);
    expect(counter.overflows).toBe(0);
    model.release();
    await running;
  });
});
