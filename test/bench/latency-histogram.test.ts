import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/bench/latency-histogram.ts';
import { ArrivalSchedule } from '../../src/bench/arrival-schedule.ts';
import { isStable, type StabilityRule } from '../../src/bench/stability-rule.ts';
import type { WindowSummary } from '../../src/bench/measurement-window.ts';

const exactPercentile = (sorted: number[], p: number): number =>
  sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;

describe('LatencyHistogram', () => {
  it('keeps percentiles within 0.1% of the exact values over six orders of magnitude', () => {
    const values: number[] = [];
    let seed = 12345;
    for (let i = 0; i < 20_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      values.push(0.001 * Math.exp((seed / 2 ** 31) * Math.log(1e6))); // 1 µs .. 1 s, log-uniform
    }
    const histogram = new LatencyHistogram();
    for (const v of values) histogram.recordMs(v);
    const sorted = [...values].sort((a, b) => a - b);
    for (const p of [50, 90, 95, 99, 99.9]) {
      const exact = Math.round(exactPercentile(sorted, p) * 1000) / 1000;
      expect(Math.abs(histogram.percentileMs(p) - exact)).toBeLessThanOrEqual(exact * 0.001 + 0.001);
    }
    expect(histogram.maxMs).toBeCloseTo(sorted[sorted.length - 1]!, 3);
    expect(histogram.count).toBe(values.length);
  });

  it('merges windows as if recorded together', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) (i % 2 ? a : b).recordMs(i);
    a.merge(b);
    expect(a.count).toBe(100);
    expect(a.percentileMs(50)).toBeCloseTo(50, 1);
    expect(a.percentileMs(99)).toBeCloseTo(99, 1);
    expect(a.maxMs).toBe(100);
    expect(a.meanMs).toBeCloseTo(50.5, 5);
  });

  it('answers 0 when empty', () => {
    expect(new LatencyHistogram().percentileMs(99)).toBe(0);
  });
});

describe('ArrivalSchedule', () => {
  it('spaces constant arrivals evenly and Poisson arrivals at the same mean rate', () => {
    const constant = new ArrivalSchedule(200, 'constant');
    const times = Array.from({ length: 5 }, () => constant.next());
    expect(times).toEqual([0, 5, 10, 15, 20]);
    const poisson = new ArrivalSchedule(1000, 'poisson');
    const gaps: number[] = [];
    let last = poisson.next();
    for (let i = 0; i < 20_000; i++) {
      const t = poisson.next();
      gaps.push(t - last);
      last = t;
    }
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(0.97);
    expect(mean).toBeLessThan(1.03);
    // Exponential gaps: the standard deviation equals the mean (constant gaps would have none).
    const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
    expect(sd / mean).toBeGreaterThan(0.9);
  });
});

describe('stability rule', () => {
  const rule: StabilityRule = { tolerancePct: 10, windows: 3, maxTrials: 10 };
  const window = (throughput: number, p99: number): WindowSummary => ({
    durationMs: 1000,
    requests: throughput,
    throughput,
    errors: 0,
    latencyMs: { p50: 1, p90: 1, p95: 1, p99, max: p99, mean: 1 },
  });
  it('needs three windows within ±10% in both throughput and p99', () => {
    expect(isStable([window(100, 5), window(100, 5)], rule)).toBe(false);
    expect(isStable([window(50, 9), window(100, 5), window(105, 5.2), window(98, 4.9)], rule)).toBe(true);
    expect(isStable([window(100, 5), window(130, 5), window(100, 5)], rule)).toBe(false);
    expect(isStable([window(100, 5), window(100, 7), window(100, 5)], rule)).toBe(false);
  });
});
