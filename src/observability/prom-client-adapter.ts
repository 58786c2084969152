/*
 * The one place Caliper relies on prom-client below its public metric classes: a metric whose samples are computed
 * whole at scrape time (a histogram kept as plain counters, say) is registered as an object that is not a prom-client
 * Metric but has what prom-client's Registry reads from one. What this module relies on, checked by
 * test/observability/prom-client-adapter.test.ts so that an upgrade that changes it fails there, by name:
 *  - Registry.registerMetric() accepts any object with `name`, and the registry only calls its `get()` (async or not)
 *    and `reset()`;
 *  - `get()` answers `{ name, help, type, aggregator, values }`, `type` being the exposition's type string
 *    ('histogram', 'counter', 'gauge'), and each value `{ value, labels, metricName? }`, `metricName` naming the
 *    series (`x_bucket`, `x_sum`, `x_count`) and defaulting to the metric's name;
 *  - getMetricsAsJSON() hands these objects on, so AggregatorRegistry.aggregate() merges them across cluster workers
 *    by `aggregator`, as it does prom-client's own metrics.
 */
import type { Aggregator, Metric, Registry } from 'prom-client';

/** One sample of a scraped metric: a series name (default: the metric's), its labels, its value. */
export interface ScrapedSample {
  value: number;
  labels: Record<string, string | number>;
  /** The series name, e.g. `caliper_batch_size_bucket`; the metric's name when absent. */
  metricName?: string;
}

/** A metric whose samples are computed at scrape time, all at once. */
export interface ScrapedMetric {
  /** Prometheus name (unique in the registry). */
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** How a cluster's primary merges the workers' samples (prom-client's aggregators; counters and histograms: 'sum'). */
  aggregator: Aggregator;
  /** The samples now, in exposition order (for a histogram: cumulative buckets ending with le="+Inf", sum, count). */
  samples(): ScrapedSample[];
}

/**
 * Registers `metric` in `registry`, so `registry.metrics()` and `getMetricsAsJSON()` include its samples at each
 * scrape. Throws prom-client's error when the registry already has a metric of that name.
 */
export function registerScrapedMetric(registry: Registry, metric: ScrapedMetric): void {
  const { name, help, type, aggregator } = metric;
  const registered = {
    name,
    help,
    type,
    aggregator,
    get: () => ({ name, help, type, aggregator, values: metric.samples() }),
    reset: () => {},
  };
  registry.registerMetric(registered as unknown as Metric);
}
