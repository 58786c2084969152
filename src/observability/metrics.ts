import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { registerFeatureMetrics } from '../features/feature-metrics.ts';
import type { ModelRepository } from '../lifecycle/model-repository.ts';
import { PIPELINE_STAGES } from '../pipeline/stage-timings.ts';
import type { RequestRecord } from '../server/request-observer.ts';
import type { SlaMonitor } from './sla-monitor.ts';

/** Latency buckets in seconds: 50 µs to 10 s, dense below 10 ms where small models live. */
const DURATION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

type StageName = (typeof PIPELINE_STAGES)[number] | 'total';

/** Label children resolved once per model version and protocol, so recording a request does no label hashing. */
interface VersionInstruments {
  stages: Record<StageName, ReturnType<Histogram<string>['labels']>>;
  success: ReturnType<Counter<string>['labels']>;
  cacheHits: ReturnType<Counter<string>['labels']>;
  cacheMisses: ReturnType<Counter<string>['labels']>;
}

/**
 * The executed-batch-size histogram, read at scrape time from each scheduler's batch statistics
 * (the batcher counts batches; requests do not see how many batches ran).
 */
class BatchSizeHistogram {
  readonly name = 'caliper_batch_size';
  readonly help = 'Rows per executed batch (model run)';
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(private readonly repository: ModelRepository) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: { value: number; labels: Record<string, string | number>; metricName: string }[] } {
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    for (const model of this.repository.list()) {
      for (const version of model.versions.values()) {
        const labels = { model: model.name, version: String(version.version) };
        const sizes = version.scheduler.batches.sizes();
        let sum = 0;
        let count = 0;
        for (const bucket of [...BATCH_BUCKETS, Infinity]) {
          let cumulative = 0;
          for (const s of sizes) if (s.batchSize <= bucket) cumulative += s.count;
          values.push({ value: cumulative, labels: { ...labels, le: bucket === Infinity ? '+Inf' : bucket }, metricName: `${this.name}_bucket` });
        }
        for (const s of sizes) {
          sum += s.batchSize * s.count;
          count += s.count;
        }
        values.push({ value: sum, labels, metricName: `${this.name}_sum` }, { value: count, labels, metricName: `${this.name}_count` });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/** Prometheus metrics of one server: its own registry, so several servers in one process never mix. */
export class ServingMetrics {
  readonly registry = new Registry();
  private readonly duration: Histogram<string>;
  private readonly requests: Counter<string>;
  private readonly cacheHits: Counter<string>;
  private readonly cacheMisses: Counter<string>;
  private readonly instruments = new Map<string, VersionInstruments>();

  constructor(repository: ModelRepository, inflight: () => number, sla?: SlaMonitor) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'caliper_' });
    this.duration = new Histogram({
      name: 'caliper_request_duration_seconds', help: 'Time per request in each pipeline stage (stage="total" for the whole request)',
      labelNames: ['model', 'version', 'stage'], buckets: DURATION_BUCKETS, registers,
    });
    this.requests = new Counter({ name: 'caliper_requests_total', help: 'Inference requests by outcome', labelNames: ['model', 'version', 'protocol', 'outcome', 'code'], registers });
    this.cacheHits = new Counter({ name: 'caliper_cache_hits_total', help: 'Requests answered from the response cache', labelNames: ['model', 'version'], registers });
    this.cacheMisses = new Counter({ name: 'caliper_cache_misses_total', help: 'Response cache lookups that missed', labelNames: ['model', 'version'], registers });
    new Gauge({
      name: 'caliper_queue_depth', help: 'Requests waiting in the batcher queue', labelNames: ['model', 'version'], registers,
      collect() {
        this.reset();
        for (const model of repository.list()) for (const v of model.versions.values()) this.set({ model: model.name, version: String(v.version) }, v.scheduler.queueDepth);
      },
    });
    new Gauge({
      name: 'caliper_inflight_requests', help: 'Inference requests being answered now', registers,
      collect() { this.set(inflight()); },
    });
    if (sla) {
      new Gauge({
        name: 'caliper_sla_breaches_total', help: 'Times a model missed its p99 budget (sla.p99_ms) for sla.breach_windows consecutive windows', labelNames: ['model'], registers,
        collect() {
          this.reset();
          for (const [model, count] of sla.breachCounts()) this.set({ model }, count);
        },
      });
      new Gauge({
        name: 'caliper_sla_p99_seconds', help: 'Rolling p99 request latency per model (SLA monitor window)', labelNames: ['model'], registers,
        collect() {
          this.reset();
          for (const model of repository.list()) {
            const p99 = sla.status(model.name).p99_ms;
            if (p99 !== null) this.set({ model: model.name }, p99 / 1000);
          }
        },
      });
    }
    this.registry.registerMetric(new BatchSizeHistogram(repository) as unknown as Metric);
    registerFeatureMetrics(this.registry, () => repository.list().flatMap((m) => [...m.versions.values()].flatMap((v) => (v.features ? [v.features.stats] : []))));
  }

  private instrumentsOf(record: RequestRecord): VersionInstruments {
    const key = `${record.model}\u0000${record.version}\u0000${record.protocol}`;
    let found = this.instruments.get(key);
    if (!found) {
      const labels = { model: record.model, version: String(record.version) };
      const stages = {} as VersionInstruments['stages'];
      for (const stage of [...PIPELINE_STAGES, 'total'] as const) stages[stage] = this.duration.labels({ ...labels, stage });
      found = {
        stages,
        success: this.requests.labels({ ...labels, protocol: record.protocol, outcome: 'success', code: '' }),
        cacheHits: this.cacheHits.labels(labels),
        cacheMisses: this.cacheMisses.labels(labels),
      };
      this.instruments.set(key, found);
    }
    return found;
  }

  record(record: RequestRecord): void {
    if (record.outcome === 'error') {
      this.requests.inc({ model: record.model, version: String(record.version), protocol: record.protocol, outcome: 'error', code: record.errorCode ?? '' });
      return;
    }
    const m = this.instrumentsOf(record);
    m.success.inc();
    const t = record.timings;
    if (!t) return;
    for (const stage of PIPELINE_STAGES) {
      const ms = t[stage];
      if (ms !== undefined) m.stages[stage].observe(ms / 1000);
    }
    m.stages.total.observe(t.total / 1000);
    if (t.cache !== undefined) (t.inference === undefined ? m.cacheHits : m.cacheMisses).inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
