import { Counter, type Registry } from 'prom-client';
import { FEATURE_OUTCOMES, type FeatureStats } from './feature-stats.ts';

/**
 * Registers the feature-lookup counters on a server's Prometheus registry. `source` lists the counters
 * of the versions being served (e.g. every ModelVersion.features?.stats); they are read at scrape
 * time, so the request path only increments plain numbers. A version that is unloaded takes its
 * counts with it (Prometheus treats that as a counter reset).
 *   caliper_feature_lookups_total{model,version,outcome}   outcome: hit, miss, timeout, error
 *   caliper_features_degraded_total{model,version}         rows answered with default features
 */
export function registerFeatureMetrics(registry: Registry, source: () => Iterable<FeatureStats>): void {
  new Counter({
    name: 'caliper_feature_lookups_total',
    help: 'Entity feature lookups by outcome (hit, miss, timeout, error)',
    labelNames: ['model', 'version', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const stats of source()) {
        for (const outcome of FEATURE_OUTCOMES)
          this.inc({ model: stats.model, version: String(stats.version), outcome }, stats.outcomes[outcome]);
      }
    },
  });
  new Counter({
    name: 'caliper_features_degraded_total',
    help: 'Rows answered with default features because the feature store was slow or unreachable',
    labelNames: ['model', 'version'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const stats of source()) this.inc({ model: stats.model, version: String(stats.version) }, stats.degraded);
    },
  });
}
