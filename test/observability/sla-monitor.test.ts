import { describe, expect, it } from 'vitest';
import { SlaMonitor, type SlaBreach } from '../../src/observability/sla-monitor.ts';
import type { RequestRecord } from '../../src/observability/request-record.ts';

const request = (durationMs: number): RequestRecord => ({
  model: 'm',
  version: 1,
  protocol: 'predict',
  outcome: 'success',
  durationMs,
});

describe('SlaMonitor', () => {
  it('reports rolling percentiles against the budget and raises a breach after consecutive missed windows', () => {
    let now = 0;
    const monitor = new SlaMonitor(
      () => ({ p99Ms: 10, windowS: 1, breachWindows: 2 }),
      () => now,
    );
    const breaches: SlaBreach[] = [];
    monitor.onBreach((b) => breaches.push(b));

    for (let i = 1; i <= 100; i++) monitor.record(request(i / 20));
    const fast = monitor.status('m');
    expect(fast.samples).toBe(100);
    expect(fast.p50_ms).toBe(2.5);
    expect(fast.p99_ms).toBe(4.95);
    expect(fast.met).toBe(true);
    expect(fast.budget_p99_ms).toBe(10);

    const slowWindow = (): void => {
      now += 1000;
      for (let i = 0; i < 100; i++) monitor.record(request(i < 95 ? 1 : 50));
    };
    slowWindow();
    expect(monitor.status('m').met).toBe(false);
    slowWindow();
    expect(breaches).toEqual([]);
    expect(monitor.status('m').consecutive_breaches).toBe(1);
    now += 1000;
    monitor.record(request(1));
    expect(breaches).toHaveLength(1);
    expect(breaches[0]).toMatchObject({ model: 'm', p99Ms: 50, budgetMs: 10, windows: 2 });
    expect(monitor.status('m')).toMatchObject({ breached: true, breaches_total: 1 });
    expect(monitor.breachCounts().get('m')).toBe(1);

    for (let i = 0; i < 100; i++) monitor.record(request(1));
    now += 1000;
    monitor.record(request(1));
    expect(monitor.status('m')).toMatchObject({ breached: false, consecutive_breaches: 0 });
  });

  it('reports percentiles without a verdict when the model has no budget', () => {
    const monitor = new SlaMonitor(() => undefined);
    expect(monitor.status('m')).toMatchObject({ samples: 0, p99_ms: null, budget_p99_ms: null, met: null });
    monitor.record(request(3));
    expect(monitor.status('m')).toMatchObject({ samples: 1, p99_ms: 3, met: null });
  });
});
