import { Counter, type Registry } from 'prom-client';
import { FEATURE_OUTCOMES, featureStatsRegistry } from './feature-stats.ts';

/**
 * Registers the feature-lookup counters on a Prometheus registry. Values are read from the live
 * FeatureStats at scrape time, so the request path only increments plain numbers.
 *   caliper_feature_lookups_total{model,version,outcome}   outcome: hit, miss, timeout, error
 *   caliper_features_degraded_total{model,version}         rows answered with default features
 */
export function registerFeatureMetrics(registry: Registry): void {
  new Counter({
    name: 'caliper_feature_lookups_total',
    help: 'Entity feature lookups by outcome (hit, miss, timeout, error)',
    labelNames: ['model', 'version', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const total of featureStatsRegistry.totals()) {
        for (const outcome of FEATURE_OUTCOMES) {
          this.inc({ model: total.model, version: String(total.version), outcome }, total.outcomes[outcome]);
        }
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
      for (const total of featureStatsRegistry.totals()) this.inc({ model: total.model, version: String(total.version) }, total.degraded);
    },
  });
}
