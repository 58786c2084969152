import { describe, expect, it } from 'vitest';
import { AdaptiveDelayController } from '../../src/scheduler/adaptive-delay.ts';
import { DynamicBatcher } from '../../src/scheduler/dynamic-batcher.ts';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorMap } from '../../src/runtime/tensor.ts';

function windowOf(controller: AdaptiveDelayController, latencyMs: number, fill: number, size = 64): void {
  for (let i = 0; i < size; i++) {
    controller.observeBatch(fill);
    controller.observeLatency(latencyMs);
  }
}

describe('AdaptiveDelayController', () => {
  it('grows the delay while the p99 is well under budget and batches leave half empty', () => {
    const c = new AdaptiveDelayController({ p99BudgetMs: 10, windowSize: 64, initialDelayUs: 0 });
    const before = c.delayUs;
    for (let w = 0; w < 5; w++) windowOf(c, 1, 0.1);
    expect(c.delayUs).toBeGreaterThan(before);
    expect(c.delayUs).toBeLessThanOrEqual(2500);
  });

  it('cuts the delay as soon as the p99 nears the budget', () => {
    const c = new AdaptiveDelayController({ p99BudgetMs: 10, windowSize: 64, initialDelayUs: 2000 });
    windowOf(c, 1, 0.1, 63);
    c.observeLatency(9.5);
    expect(c.last?.p99Ms).toBe(9.5);
    expect(c.delayUs).toBe(1000);
    windowOf(c, 12, 1);
    expect(c.delayUs).toBe(500);
  });

  it('does not grow the delay when batches already fill up', () => {
    const c = new AdaptiveDelayController({ p99BudgetMs: 10, windowSize: 64, initialDelayUs: 300 });
    for (let w = 0; w < 5; w++) windowOf(c, 1, 1);
    expect(c.delayUs).toBe(300);
  });
});

describe('DynamicBatcher with max_queue_delay_us: auto', () => {
  it('lengthens the delay under light load and shortens it when slow batches push the p99 over budget', async () => {
    let computeMs = 0;
    const runner = {
      run: async (feeds: TensorMap): Promise<RunResult> => {
        if (computeMs > 0) await new Promise((r) => setTimeout(r, computeMs));
        return { outputs: { y: feeds.x! }, computeMs };
      },
    };
    const batcher = new DynamicBatcher(runner, {
      batching: {
        enabled: true,
        maxBatchSize: 64,
        preferredBatchSizes: [],
        maxQueueDelayUs: 'auto',
        maxQueueSize: 1000,
        timeoutMs: 1000,
        priorityLevels: 1,
      },
      concurrency: 1,
      // A budget a loaded machine keeps well under with instant batches (its p99 reached 16 ms under load), and that
      // batches of 350 ms exceed whatever the load.
      sla: { p99Ms: 400, windowS: 10, breachWindows: 3 },
    });
    const one = () =>
      batcher.submit({ inputs: { x: { type: 'float32', dims: [1, 1], data: new Float32Array([1]) } }, rows: 1 });
    const initial = batcher.delayUs;
    for (let i = 0; i < 256 * 3; i++) await one();
    const grown = batcher.delayUs;
    expect(grown).toBeGreaterThan(initial);

    computeMs = 350;
    for (let round = 0; round < 10 && batcher.delayUs >= grown; round++)
      await Promise.all(Array.from({ length: 256 }, one));
    expect(batcher.delayUs).toBeLessThan(grown);
  });
});
