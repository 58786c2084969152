/*
 * src/observability/prom-client-adapter.ts registers scrape-time metrics as plain objects that prom-client's Registry
 * reads like its own metrics; that is not prom-client's documented API. These checks state what the adapter relies
 * on, so that a prom-client upgrade that changes it fails here with the reason instead of as a silently missing or
 * mangled series on /metrics.
 */
import { AggregatorRegistry, Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerScrapedMetric, type ScrapedMetric } from '../../src/observability/prom-client-adapter.ts';

const UPGRADE = 'prom-client changed an internal that src/observability/prom-client-adapter.ts relies on:';

/** A two-bucket histogram over one label set, its counts given per call. */
function histogram(counts: { le1: number; inf: number; sum: number }): ScrapedMetric {
  const labels = { model: 'm' };
  return {
    name: 'test_seconds',
    help: 'A scraped histogram',
    type: 'histogram',
    aggregator: 'sum',
    samples: () => [
      { value: counts.le1, labels: { ...labels, le: 1 }, metricName: 'test_seconds_bucket' },
      { value: counts.inf, labels: { ...labels, le: '+Inf' }, metricName: 'test_seconds_bucket' },
      { value: counts.sum, labels, metricName: 'test_seconds_sum' },
      { value: counts.inf, labels, metricName: 'test_seconds_count' },
    ],
  };
}

describe('the prom-client internals the scrape-time metric adapter relies on', () => {
  it('the registry renders the samples of get() under their series names, computed anew at each scrape', async () => {
    const registry = new Registry();
    const counts = { le1: 2, inf: 3, sum: 4.5 };
    registerScrapedMetric(registry, histogram(counts));
    const expected = (le1: number, inf: number, sum: number) =>
      [
        '# HELP test_seconds A scraped histogram',
        '# TYPE test_seconds histogram',
        `test_seconds_bucket{model="m",le="1"} ${le1}`,
        `test_seconds_bucket{model="m",le="+Inf"} ${inf}`,
        `test_seconds_sum{model="m"} ${sum}`,
        `test_seconds_count{model="m"} ${inf}`,
        '',
      ].join('\n');
    expect(await registry.metrics(), `${UPGRADE} Registry.metrics() no longer renders get()'s values`).toBe(
      expected(2, 3, 4.5),
    );
    Object.assign(counts, { le1: 5, inf: 7, sum: 9 });
    expect(await registry.metrics(), `${UPGRADE} get() is no longer called at each scrape`).toBe(expected(5, 7, 9));
  });

  it('sits among prom-client metrics in registration order, and a second metric of the same name is refused', async () => {
    const registry = new Registry();
    new Counter({ name: 'before_total', help: 'b', registers: [registry] }).inc();
    registerScrapedMetric(registry, histogram({ le1: 1, inf: 1, sum: 1 }));
    new Counter({ name: 'after_total', help: 'a', registers: [registry] }).inc(2);
    const text = await registry.metrics();
    expect(text.indexOf('before_total 1')).toBeLessThan(text.indexOf('test_seconds_bucket'));
    expect(text.indexOf('test_seconds_count')).toBeLessThan(text.indexOf('after_total 2'));
    expect(registry.getSingleMetric('test_seconds'), `${UPGRADE} the registry no longer keys metrics by name`).toBe(
      registry.getMetricsAsArray()[1],
    );
    expect(() => registerScrapedMetric(registry, histogram({ le1: 0, inf: 0, sum: 0 }))).toThrow(/already/);
    expect(() => registry.resetMetrics(), `${UPGRADE} resetMetrics() needs more than reset()`).not.toThrow();
  });

  it("cluster aggregation sums two workers' scraped histograms per series and label set", async () => {
    const workers = [histogram({ le1: 1, inf: 2, sum: 0.5 }), histogram({ le1: 3, inf: 4, sum: 1.5 })];
    const parts = await Promise.all(
      workers.map(async (metric) => {
        const registry = new Registry();
        registerScrapedMetric(registry, metric);
        return registry.getMetricsAsJSON();
      }),
    );
    expect(parts[0]![0], `${UPGRADE} getMetricsAsJSON() no longer hands get()'s object on`).toMatchObject({
      name: 'test_seconds',
      type: 'histogram',
      aggregator: 'sum',
    });
    const merged = AggregatorRegistry.aggregate(parts);
    expect(await merged.metrics(), `${UPGRADE} AggregatorRegistry no longer sums scraped metrics`).toBe(
      [
        '# HELP test_seconds A scraped histogram',
        '# TYPE test_seconds histogram',
        'test_seconds_bucket{model="m",le="1"} 4',
        'test_seconds_bucket{model="m",le="+Inf"} 6',
        'test_seconds_sum{model="m"} 2',
        'test_seconds_count{model="m"} 6',
        '',
      ].join('\n'),
    );
  });
});
