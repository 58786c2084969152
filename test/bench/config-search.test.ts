import { describe, expect, it } from 'vitest';
import { gridSearch, hillClimb } from '../../src/bench/config-search.ts';
import { gridPoints, settingsAt, type SearchSpace, type SpacePoint } from '../../src/bench/tune-space.ts';

const space: SearchSpace = {
  maxBatchSize: [1, 8, 16, 32, 64],
  maxQueueDelayUs: [0, 100, 500, 2000],
  instances: [
    { count: 1, kind: 'in_thread' },
    { count: 1, kind: 'worker' },
    { count: 2, kind: 'worker' },
  ],
  intraOpThreads: [1, 2],
  maxThreads: 2,
};

/** A synthetic throughput surface with one peak (batch 32, delay 500 µs, 2 workers × 1 thread) and a budget wall. */
function surface(point: SpacePoint): number {
  const s = settingsAt(space, point);
  const batchGain = 1000 * (1 - Math.abs(Math.log2(s.maxBatchSize) - 5) / 6);
  const delayGain =
    s.maxBatchSize === 1 ? 0 : 200 - Math.abs(Math.log10(s.maxQueueDelayUs + 1) - Math.log10(501)) * 100;
  const instanceGain = s.instanceKind === 'worker' ? s.instanceCount * 150 : 100;
  const threadPenalty = s.intraOpThreads > 1 ? 120 : 0;
  if (s.maxQueueDelayUs >= 2000) return 0; // p99 over budget
  return batchGain + delayGain + instanceGain - threadPenalty;
}

describe('configuration search', () => {
  it('grid search measures every candidate and finds the best', async () => {
    const seen: SpacePoint[] = [];
    const outcome = await gridSearch(space, async (p) => {
      seen.push(p);
      return surface(p);
    });
    expect(outcome.trials).toBe(gridPoints(space).length);
    expect(seen.length).toBe(gridPoints(space).length);
    expect(settingsAt(space, outcome.best!)).toMatchObject({
      maxBatchSize: 32,
      maxQueueDelayUs: 500,
      instanceCount: 2,
      intraOpThreads: 1,
    });
  });

  it('hill climbing reaches the same peak in far fewer trials, never measuring a point twice', async () => {
    const seen = new Set<string>();
    const outcome = await hillClimb(space, [4, 1, 0, 0], async (p) => {
      expect(seen.has(p.join())).toBe(false);
      seen.add(p.join());
      return surface(p);
    });
    expect(settingsAt(space, outcome.best!)).toMatchObject({
      maxBatchSize: 32,
      maxQueueDelayUs: 500,
      instanceCount: 2,
      intraOpThreads: 1,
    });
    expect(outcome.trials).toBeLessThan(gridPoints(space).length / 3);
  });

  it('reports no winner when nothing meets the budget', async () => {
    const outcome = await hillClimb(space, [0, 0, 0, 0], async () => 0);
    expect(outcome.best).toBeUndefined();
  });

  it('skips oversubscribed candidates and delays without batching', () => {
    for (const p of gridPoints(space)) {
      const s = settingsAt(space, p);
      expect(s.instanceCount * s.intraOpThreads).toBeLessThanOrEqual(2);
      if (s.maxBatchSize === 1) expect(s.maxQueueDelayUs).toBe(0);
    }
  });
});
