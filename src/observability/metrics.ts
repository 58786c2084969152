import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { registerFeatureMetrics } from '../features/feature-metrics.ts';
import type { ModelRepository } from '../lifecycle/model-repository.ts';
import { PIPELINE_STAGES } from '../pipeline/stage-timings.ts';
import { registerScrapedMetric, type ScrapedMetric, type ScrapedSample } from './prom-client-adapter.ts';
import type { RequestRecord } from './request-record.ts';
import type { SlaMonitor } from './sla-monitor.ts';

/** Latency buckets in seconds: 50 µs to 10 s, dense below 10 ms where small models live. */
const DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/**
 * How often the `caliper_nodejs_eventloop_lag_*` monitor samples the event loop (ms). prom-client's default, 10 ms,
 * wakes an idle server 100 times a second (≈ 8 ms of CPU a second per process on this machine, paid by every
 * `serve --workers` worker); at 100 ms every stall of 100 ms or more is still seen, shorter ones in proportion.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

type StageName = (typeof PIPELINE_STAGES)[number] | 'total';
const STAGE_NAMES: readonly StageName[] = [...PIPELINE_STAGES, 'total'];

/**
 * One model version's request metrics as plain numbers, turned into Prometheus series only at scrape time:
 * prom-client's observe()/inc() hash and validate the labels on every call, which cost more per request than
 * a small model's share of a batched run.
 */
class VersionRecorder {
  readonly labels: { model: string; version: string };
  /** Per stage, per bucket (the last one +Inf), not cumulative. */
  readonly buckets: Float64Array[] = STAGE_NAMES.map(() => new Float64Array(DURATION_BUCKETS.length + 1));
  readonly sums = new Float64Array(STAGE_NAMES.length);
  readonly counts = new Float64Array(STAGE_NAMES.length);
  /** Successes per protocol not yet added to caliper_requests_total. */
  readonly pendingSuccess = new Map<string, number>();
  pendingCacheHits = 0;
  pendingCacheMisses = 0;

  constructor(model: string, version: number) {
    this.labels = { model, version: String(version) };
  }

  observe(stage: number, seconds: number): void {
    let b = 0;
    while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]!) b++;
    this.buckets[stage]![b]!++;
    this.sums[stage]! += seconds;
    this.counts[stage]!++;
  }

  durationValues(out: ScrapedSample[], name: string): void {
    for (let s = 0; s < STAGE_NAMES.length; s++) {
      if (this.counts[s] === 0) continue;
      const labels = { ...this.labels, stage: STAGE_NAMES[s]! };
      const counts = this.buckets[s]!;
      let cumulative = 0;
      for (let b = 0; b <= DURATION_BUCKETS.length; b++) {
        cumulative += counts[b]!;
        out.push({
          value: cumulative,
          labels: { ...labels, le: b < DURATION_BUCKETS.length ? DURATION_BUCKETS[b]! : '+Inf' },
          metricName: `${name}_bucket`,
        });
      }
      out.push(
        { value: this.sums[s]!, labels, metricName: `${name}_sum` },
        { value: this.counts[s]!, labels, metricName: `${name}_count` },
      );
    }
  }
}

/** caliper_request_duration_seconds, read at scrape time from the versions' recorders. */
function stageDurationHistogram(recorders: Map<string, VersionRecorder>): ScrapedMetric {
  const name = 'caliper_request_duration_seconds';
  return {
    name,
    help: 'Time per request in each pipeline stage (stage="total" for the whole request)',
    type: 'histogram',
    aggregator: 'sum',
    samples() {
      const values: ScrapedSample[] = [];
      for (const recorder of recorders.values()) recorder.durationValues(values, name);
      return values;
    },
  };
}

/**
 * The executed-batch-size histogram, read at scrape time from each scheduler's batch statistics
 * (the batcher counts batches; requests do not see how many batches ran).
 */
function batchSizeHistogram(repository: ModelRepository): ScrapedMetric {
  const name = 'caliper_batch_size';
  return {
    name,
    help: 'Rows per executed batch (model run)',
    type: 'histogram',
    aggregator: 'sum',
    samples() {
      const values: ScrapedSample[] = [];
      for (const model of repository.list()) {
        for (const version of model.versions.values()) {
          const labels = { model: model.name, version: String(version.version) };
          const sizes = version.scheduler.batches.sizes();
          let sum = 0;
          let count = 0;
          for (const bucket of [...BATCH_BUCKETS, Infinity]) {
            let cumulative = 0;
            for (const s of sizes) if (s.batchSize <= bucket) cumulative += s.count;
            values.push({
              value: cumulative,
              labels: { ...labels, le: bucket === Infinity ? '+Inf' : bucket },
              metricName: `${name}_bucket`,
            });
          }
          for (const s of sizes) {
            sum += s.batchSize * s.count;
            count += s.count;
          }
          values.push(
            { value: sum, labels, metricName: `${name}_sum` },
            { value: count, labels, metricName: `${name}_count` },
          );
        }
      }
      return values;
    },
  };
}

/** Prometheus metrics of one server: its own registry, so several servers in one process never mix. */
export class ServingMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<string>;
  private readonly recorders = new Map<string, VersionRecorder>();

  constructor(repository: ModelRepository, inflight: () => number, sla?: SlaMonitor) {
    const registers = [this.registry];
    const recorders = this.recorders;
    collectDefaultMetrics({
      register: this.registry,
      prefix: 'caliper_',
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
    registerScrapedMetric(this.registry, stageDurationHistogram(recorders));
    this.requests = new Counter({
      name: 'caliper_requests_total',
      help: 'Inference requests by outcome (success, error, cancelled: the client left while queued)',
      labelNames: ['model', 'version', 'protocol', 'outcome', 'code'],
      registers,
      collect() {
        for (const recorder of recorders.values()) {
          for (const [protocol, count] of recorder.pendingSuccess)
            if (count > 0) this.inc({ ...recorder.labels, protocol, outcome: 'success', code: '' }, count);
          recorder.pendingSuccess.clear();
        }
      },
    });
    new Counter({
      name: 'caliper_cache_hits_total',
      help: 'Requests answered from the response cache',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        for (const recorder of recorders.values())
          if (recorder.pendingCacheHits > 0) this.inc(recorder.labels, recorder.pendingCacheHits);
        for (const recorder of recorders.values()) recorder.pendingCacheHits = 0;
      },
    });
    new Counter({
      name: 'caliper_cache_misses_total',
      help: 'Response cache lookups that missed',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        for (const recorder of recorders.values())
          if (recorder.pendingCacheMisses > 0) this.inc(recorder.labels, recorder.pendingCacheMisses);
        for (const recorder of recorders.values()) recorder.pendingCacheMisses = 0;
      },
    });
    new Gauge({
      name: 'caliper_queue_depth',
      help: 'Requests waiting in the batcher queue',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        this.reset();
        for (const model of repository.list())
          for (const v of model.versions.values())
            this.set({ model: model.name, version: String(v.version) }, v.scheduler.queueDepth);
      },
    });
    new Gauge({
      name: 'caliper_inflight_requests',
      help: 'Inference requests being answered now',
      registers,
      collect() {
        this.set(inflight());
      },
    });
    if (sla) {
      new Gauge({
        name: 'caliper_sla_breaches_total',
        help: 'Times a model missed its p99 budget (sla.p99_ms) for sla.breach_windows consecutive windows',
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const [model, count] of sla.breachCounts()) this.set({ model }, count);
        },
      });
      new Gauge({
        name: 'caliper_sla_p99_seconds',
        help: 'Rolling p99 request latency per model (SLA monitor window)',
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const model of repository.list()) {
            const p99 = sla.status(model.name).p99_ms;
            if (p99 !== null) this.set({ model: model.name }, p99 / 1000);
          }
        },
      });
    }
    registerScrapedMetric(this.registry, batchSizeHistogram(repository));
    registerFeatureMetrics(this.registry, () =>
      repository.list().flatMap((m) => [...m.versions.values()].flatMap((v) => (v.features ? [v.features.stats] : []))),
    );
  }

  private recorderOf(record: RequestRecord): VersionRecorder {
    const key = `${record.model}\u0000${record.version}`;
    let found = this.recorders.get(key);
    if (!found) {
      found = new VersionRecorder(record.model, record.version);
      this.recorders.set(key, found);
    }
    return found;
  }

  record(record: RequestRecord): void {
    if (record.outcome !== 'success') {
      this.requests.inc({
        model: record.model,
        version: String(record.version),
        protocol: record.protocol,
        outcome: record.outcome,
        code: record.errorCode ?? '',
      });
      return;
    }
    const m = this.recorderOf(record);
    m.pendingSuccess.set(record.protocol, (m.pendingSuccess.get(record.protocol) ?? 0) + 1);
    const t = record.timings;
    if (!t) return;
    for (let s = 0; s < PIPELINE_STAGES.length; s++) {
      const ms = t[PIPELINE_STAGES[s]!];
      if (ms !== undefined) m.observe(s, ms / 1000);
    }
    m.observe(PIPELINE_STAGES.length, t.total / 1000);
    if (t.cache !== undefined) {
      if (t.inference === undefined) m.pendingCacheHits++;
      else m.pendingCacheMisses++;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
