import type { ModelRepository } from '../lifecycle/model-repository.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { PIPELINE_STAGES, type PipelineStage } from '../pipeline/stage-timings.ts';
import type { RequestRecord } from './request-record.ts';
import { LatencyWindow } from './latency-window.ts';

/** A count and its cumulative duration in nanoseconds, as Triton's statistics extension reports them. */
export interface StatDuration {
  count: number;
  ns: number;
}

interface VersionCounters {
  lastInference: number;
  inferenceCount: number;
  success: StatDuration;
  fail: StatDuration;
  /** Triton's stages, as its statistics extension defines them (see record()). */
  queue: StatDuration;
  computeInput: StatDuration;
  computeInfer: StatDuration;
  computeOutput: StatDuration;
  /** Requests dropped from the queue because their client left. */
  cancelled: StatDuration;
  cacheHit: StatDuration;
  cacheMiss: StatDuration;
  /** Caliper's own stages (as in Server-Timing): each counts the requests that passed through it. */
  stages: Record<PipelineStage | 'total', StatDuration>;
  /** Recent totals and totals minus inference, for medians. */
  total: LatencyWindow;
  overhead: LatencyWindow;
}

const zero = (): StatDuration => ({ count: 0, ns: 0 });
const add = (stat: StatDuration, ms: number): void => {
  stat.count++;
  stat.ns += Math.round(ms * 1e6);
};

function newCounters(): VersionCounters {
  const stages = {} as Record<PipelineStage | 'total', StatDuration>;
  for (const stage of [...PIPELINE_STAGES, 'total'] as const) stages[stage] = zero();
  return {
    lastInference: 0,
    inferenceCount: 0,
    success: zero(),
    fail: zero(),
    cancelled: zero(),
    queue: zero(),
    computeInput: zero(),
    computeInfer: zero(),
    computeOutput: zero(),
    cacheHit: zero(),
    cacheMiss: zero(),
    stages,
    total: new LatencyWindow(4096),
    overhead: new LatencyWindow(4096),
  };
}

/** The statistics extension's answer (Triton's ModelStatisticsResponse in JSON): one entry per model version. */
export interface ModelStatsAnswer {
  model_stats: Record<string, unknown>[];
}

/**
 * Where the statistics extension's answer comes from: one process's ModelStatistics, or under
 * `caliper serve --workers` every worker's merged. Throws CALIPER_MODEL_NOT_FOUND (or the version's error) for an
 * unknown model or version.
 */
export interface StatisticsSource {
  stats(name?: string, version?: string): ModelStatsAnswer | Promise<ModelStatsAnswer>;
}

/** Per model version: request counts, per-stage cumulative time, batch sizes executed (Triton's statistics extension, plus stages). */
export class ModelStatistics {
  private readonly counters = new Map<string, VersionCounters>();

  constructor(private readonly repository: ModelRepository) {}

  private countersOf(model: string, version: number): VersionCounters {
    const key = `${model}\u0000${version}`;
    let found = this.counters.get(key);
    if (!found) {
      found = newCounters();
      this.counters.set(key, found);
    }
    return found;
  }

  /**
   * Counts one request. Triton's stages, each a count with the time of exactly the requests counted:
   * - queue: every successful request, cache hits included (they wait 0 here: the cache is looked up before the queue);
   * - compute_input: preparing the input tensors — validate, features and preprocess — for requests that ran the model;
   * - compute_infer: the model run (the batch's run for each request in it), for requests that ran the model;
   * - compute_output: postprocess, for requests that ran the model (v2 and gRPC answer the model's tensors as
   *   they are, so theirs is 0);
   * - cache_hit: the lookup of answers from the cache; cache_miss: the lookup of those that then ran the model.
   * inference_count adds the rows (inferences) of each request that ran the model, not cache hits.
   */
  record(record: RequestRecord): void {
    const c = this.countersOf(record.model, record.version);
    c.lastInference = Date.now();
    if (record.outcome === 'cancelled') {
      add(c.cancelled, record.durationMs);
      return;
    }
    if (record.outcome === 'error') {
      add(c.fail, record.durationMs);
      return;
    }
    add(c.success, record.durationMs);
    const timings = record.timings;
    if (!timings) return;
    for (const stage of PIPELINE_STAGES) {
      const ms = timings[stage];
      if (ms !== undefined) add(c.stages[stage], ms);
    }
    add(c.stages.total, timings.total);
    c.total.add(timings.total);
    add(c.queue, timings.queue ?? 0);
    if (timings.inference === undefined) {
      if (timings.cache !== undefined) add(c.cacheHit, timings.cache);
      return;
    }
    if (timings.cache !== undefined) add(c.cacheMiss, timings.cache);
    c.inferenceCount += record.rows ?? 1;
    add(c.computeInput, (timings.validate ?? 0) + (timings.features ?? 0) + (timings.preprocess ?? 0));
    add(c.computeInfer, timings.inference);
    add(c.computeOutput, timings.postprocess ?? 0);
    c.overhead.add(timings.total - timings.inference);
  }

  /** The statistics of one version in the extension's JSON shape (with Caliper's per-stage and overhead additions). */
  versionStats(version: ModelVersion): Record<string, unknown> {
    const c = this.countersOf(version.name, version.version);
    return {
      name: version.name,
      version: String(version.version),
      last_inference: c.lastInference,
      inference_count: c.inferenceCount,
      execution_count: version.scheduler.batches.executions,
      inference_stats: {
        success: c.success,
        fail: c.fail,
        cancelled: c.cancelled,
        queue: c.queue,
        compute_input: c.computeInput,
        compute_infer: c.computeInfer,
        compute_output: c.computeOutput,
        cache_hit: c.cacheHit,
        cache_miss: c.cacheMiss,
      },
      // Per batch size only the model run is timed (stacking and splitting rows is inside it): input and output are 0 / 0.
      batch_stats: version.scheduler.batches.sizes().map((b) => ({
        batch_size: b.batchSize,
        compute_input: zero(),
        compute_infer: { count: b.count, ns: Math.round(b.computeMs * 1e6) },
        compute_output: zero(),
      })),
      stages: Object.fromEntries(Object.entries(c.stages).filter(([, v]) => v.count > 0)),
      latency_us: { total: c.total.summaryUs(), overhead: c.overhead.summaryUs() },
      queue_depth: version.scheduler.queueDepth,
      batchable: version.batchAxis.batchable,
      ...(version.batchAxis.batchable ? {} : { batchable_reason: version.batchAxis.reason }),
    };
  }

  /**
   * The recent request latencies (milliseconds) behind latency_us of one version: totals, and totals minus the
   * model run. `caliper serve --workers` merges these over workers to compute percentiles of the whole server.
   */
  latencySamples(model: string, version: number): { total: Float64Array; overhead: Float64Array } {
    const c = this.countersOf(model, version);
    return { total: c.total.values(), overhead: c.overhead.values() };
  }

  /** Every served version of `name` (or of every model), optionally one version. */
  stats(name?: string, version?: string): ModelStatsAnswer {
    const versions: ModelVersion[] = [];
    if (name === undefined) {
      for (const model of this.repository.list()) versions.push(...model.versions.values());
    } else if (version !== undefined) {
      versions.push(this.repository.version(name, version));
    } else {
      versions.push(...this.repository.get(name).versions.values());
    }
    return { model_stats: versions.map((v) => this.versionStats(v)) };
  }
}
