import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { StatDuration } from '../observability/model-statistics.ts';
import { LatencyWindow, percentilesOf } from '../observability/latency-window.ts';
import type { SlaStatus } from '../observability/sla-monitor.ts';

/**
 * Merging what each worker of `caliper serve --workers N` observed into what one server would report:
 * counts and durations are summed; percentiles are computed again over the workers' latency samples put
 * together (never averaged over workers: the mean of two p99s is not the p99 of the whole).
 */

/** One worker's /v2/models/.../stats answer and the latency samples behind its percentiles. */
export interface StatsPart {
  model_stats: Record<string, unknown>[];
  /** Per version (`name`, `version` as in model_stats): recent totals and totals minus inference, in ms. */
  samples: { name: string; version: string; total: Float64Array; overhead: Float64Array }[];
}

/** One worker's SLA status of a model and its window's latency samples (ms). */
export interface SlaPart {
  status: SlaStatus;
  samples: Float64Array;
}

/** One worker's Prometheus metrics (registry.getMetricsAsJSON()) and, per model, its SLA window samples (ms). */
export interface MetricsPart {
  metrics: MetricObjectWithValues<MetricValue<string>>[];
  sla: { model: string; samples: Float64Array }[];
}

const isDuration = (value: unknown): value is StatDuration =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as StatDuration).count === 'number' &&
  typeof (value as StatDuration).ns === 'number';

function sumDurations(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(from)) {
    if (!isDuration(value)) continue;
    const existing = into[key];
    if (isDuration(existing)) into[key] = { count: existing.count + value.count, ns: existing.ns + value.ns };
    else into[key] = { ...value };
  }
}

function concat(arrays: Float64Array[]): Float64Array {
  const all = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    all.set(a, at);
    at += a.length;
  }
  return all;
}

/** {count, p50, p90, p99} in µs over the given samples (ms), as LatencyWindow.summaryUs reports one worker's. */
function summaryUs(samples: Float64Array): ReturnType<LatencyWindow['summaryUs']> {
  const window = new LatencyWindow(Math.max(1, samples.length));
  for (const ms of samples) window.add(ms);
  return window.summaryUs();
}

interface BatchStat {
  batch_size: number;
  compute_input: StatDuration;
  compute_infer: StatDuration;
  compute_output: StatDuration;
}

/**
 * The statistics extension's answer for the whole server: per model version, counts and cumulative times summed
 * over workers, batch statistics summed per batch size, last_inference the latest, queue_depth the total, and
 * latency_us percentiles over every worker's samples together.
 */
export function mergeModelStats(parts: readonly StatsPart[]): { model_stats: Record<string, unknown>[] } {
  const merged = new Map<string, Record<string, unknown>>();
  const samples = new Map<string, { total: Float64Array[]; overhead: Float64Array[] }>();
  const keyOf = (name: unknown, version: unknown): string => `${String(name)}\u0000${String(version)}`;
  for (const part of parts) {
    for (const s of part.samples) {
      const key = keyOf(s.name, s.version);
      const entry = samples.get(key) ?? { total: [], overhead: [] };
      entry.total.push(s.total);
      entry.overhead.push(s.overhead);
      samples.set(key, entry);
    }
    for (const stats of part.model_stats) {
      const key = keyOf(stats.name, stats.version);
      const into = merged.get(key);
      if (!into) {
        merged.set(key, structuredClone(stats));
        continue;
      }
      into.last_inference = Math.max(Number(into.last_inference), Number(stats.last_inference));
      for (const field of ['inference_count', 'execution_count', 'queue_depth'])
        into[field] = Number(into[field] ?? 0) + Number(stats[field] ?? 0);
      sumDurations(into.inference_stats as Record<string, unknown>, stats.inference_stats as Record<string, unknown>);
      sumDurations(into.stages as Record<string, unknown>, stats.stages as Record<string, unknown>);
      const batches = into.batch_stats as BatchStat[];
      for (const b of stats.batch_stats as BatchStat[]) {
        const same = batches.find((x) => x.batch_size === b.batch_size);
        if (!same) batches.push(structuredClone(b));
        else sumDurations(same as unknown as Record<string, unknown>, b as unknown as Record<string, unknown>);
      }
      batches.sort((a, b) => a.batch_size - b.batch_size);
    }
  }
  for (const [key, stats] of merged) {
    const s = samples.get(key);
    if (!s) continue;
    stats.latency_us = { total: summaryUs(concat(s.total)), overhead: summaryUs(concat(s.overhead)) };
  }
  return { model_stats: [...merged.values()] };
}

const roundMs = (ms: number | undefined): number | null =>
  ms === undefined || Number.isNaN(ms) ? null : Math.round(ms * 1000) / 1000;

/**
 * A model's SLA status for the whole server: p50/p95/p99 over every worker's window samples together, samples and
 * breach windows summed, breached when any worker's window breached, consecutive breaches the most of any worker.
 */
export function mergeSlaStatus(parts: readonly SlaPart[]): SlaStatus {
  const first = parts[0];
  if (!first) throw new Error('mergeSlaStatus: no worker answered');
  const [p50, p95, p99] = percentilesOf(concat(parts.map((p) => p.samples)), [0.5, 0.95, 0.99]);
  const p99ms = roundMs(p99);
  const budget = first.status.budget_p99_ms;
  return {
    ...first.status,
    samples: parts.reduce((n, p) => n + p.status.samples, 0),
    p50_ms: roundMs(p50),
    p95_ms: roundMs(p95),
    p99_ms: p99ms,
    met: budget === null || p99ms === null ? null : p99ms <= budget,
    consecutive_breaches: Math.max(...parts.map((p) => p.status.consecutive_breaches)),
    breached: parts.some((p) => p.status.breached),
    breaches_total: parts.reduce((n, p) => n + p.status.breaches_total, 0),
  };
}

const SLA_P99_METRIC = 'caliper_sla_p99_seconds';

/**
 * The Prometheus exposition for the whole server: each worker's metrics aggregated by prom-client's
 * AggregatorRegistry (counters, histograms and most gauges summed per label set; version info taken once),
 * except the rolling SLA p99 gauge, computed again over every worker's window samples together.
 */
export async function mergeMetrics(parts: readonly MetricsPart[]): Promise<{ text: string; contentType: string }> {
  const registry = AggregatorRegistry.aggregate(parts.map((p) => p.metrics));
  if (registry.getSingleMetric(SLA_P99_METRIC)) {
    const help = parts.flatMap((p) => p.metrics).find((m) => m.name === SLA_P99_METRIC)?.help ?? SLA_P99_METRIC;
    registry.removeSingleMetric(SLA_P99_METRIC);
    const byModel = new Map<string, Float64Array[]>();
    for (const part of parts)
      for (const s of part.sla) byModel.set(s.model, [...(byModel.get(s.model) ?? []), s.samples]);
    const gauge = new Gauge({ name: SLA_P99_METRIC, help, labelNames: ['model'], registers: [registry] });
    for (const [model, arrays] of byModel) {
      const [p99] = percentilesOf(concat(arrays), [0.99]);
      if (p99 !== undefined && !Number.isNaN(p99)) gauge.set({ model }, p99 / 1000);
    }
  }
  return { text: await registry.metrics(), contentType: registry.contentType };
}
