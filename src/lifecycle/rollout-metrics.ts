import { Counter, Gauge, type Registry } from 'prom-client';
import type { ModelRepository } from './model-repository.ts';
import type { RegistryFollower } from './registry-follower.ts';

/**
 * Registers the rollout metrics on a Prometheus registry; values are read at scrape time from the
 * follower's status and the live traffic policies, so the request path only bumps plain numbers.
 *   caliper_model_load_failures_total{model}          versions that failed to load or warm
 *   caliper_model_swaps_total{model}                  default-version switches
 *   caliper_model_served_version{model,role}          role: default, canary, shadow
 *   caliper_model_load_failed{model}                  1 while the wanted version could not be loaded
 *   caliper_shadow_requests_total{model,version,result}  result: agree, disagree, error, dropped
 *   caliper_shadow_latency_ratio{model,version}       mean shadow latency / mean served latency
 */
export function registerRolloutMetrics(
  registry: Registry,
  repository: ModelRepository,
  follower?: RegistryFollower,
): void {
  const statuses = () => follower?.status() ?? [];
  new Counter({
    name: 'caliper_model_load_failures_total',
    help: 'Model versions that failed to load or warm up',
    labelNames: ['model'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of statuses()) this.inc({ model: s.name }, s.loadFailures);
    },
  });
  new Counter({
    name: 'caliper_model_swaps_total',
    help: 'Switches of the version answering a model',
    labelNames: ['model'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of statuses()) this.inc({ model: s.name }, s.swaps);
    },
  });
  new Gauge({
    name: 'caliper_model_load_failed',
    help: '1 while the version the registry names could not be loaded',
    labelNames: ['model'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of statuses()) this.set({ model: s.name }, s.failedVersion === undefined ? 0 : 1);
    },
  });
  new Gauge({
    name: 'caliper_model_served_version',
    help: 'Version serving each role (default, canary, shadow)',
    labelNames: ['model', 'role'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const model of repository.list()) {
        this.set({ model: model.name, role: 'default' }, model.defaultVersion);
        if (model.traffic?.canary)
          this.set({ model: model.name, role: 'canary' }, model.traffic.canary.version.version);
        if (model.traffic?.shadow)
          this.set({ model: model.name, role: 'shadow' }, model.traffic.shadow.version.version);
      }
    },
  });
  new Counter({
    name: 'caliper_shadow_requests_total',
    help: 'Requests mirrored to a shadow version, by result',
    labelNames: ['model', 'version', 'result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const model of repository.list()) {
        const shadow = model.traffic?.shadow;
        if (!shadow) continue;
        const labels = { model: model.name, version: String(shadow.version.version) };
        this.inc({ ...labels, result: 'agree' }, shadow.stats.agreed);
        this.inc({ ...labels, result: 'disagree' }, shadow.stats.disagreed);
        this.inc({ ...labels, result: 'error' }, shadow.stats.errors);
        this.inc({ ...labels, result: 'dropped' }, shadow.stats.dropped);
      }
    },
  });
  new Gauge({
    name: 'caliper_shadow_latency_ratio',
    help: 'Mean shadow latency over mean served latency for the mirrored requests',
    labelNames: ['model', 'version'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const model of repository.list()) {
        const shadow = model.traffic?.shadow;
        if (!shadow || shadow.stats.primaryMsTotal <= 0) continue;
        this.set(
          { model: model.name, version: String(shadow.version.version) },
          shadow.stats.shadowMsTotal / shadow.stats.primaryMsTotal,
        );
      }
    },
  });
}
