import type { ModelRepository } from '../lifecycle/model-repository.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { PIPELINE_STAGES, type PipelineStage } from '../pipeline/stage-timings.ts';
import type { RequestRecord } from '../server/request-observer.ts';
import { LatencyWindow } from './latency-window.ts';

/** A count and its cumulative duration in nanoseconds, as Triton's statistics extension reports them. */
export interface StatDuration { count: number; ns: number }

interface VersionCounters {
  lastInference: number;
  inferenceCount: number;
  success: StatDuration;
  fail: StatDuration;
  cacheHit: StatDuration;
  cacheMiss: StatDuration;
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
    lastInference: 0, inferenceCount: 0, success: zero(), fail: zero(), cacheHit: zero(), cacheMiss: zero(), stages,
    total: new LatencyWindow(4096), overhead: new LatencyWindow(4096),
  };
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

  record(record: RequestRecord): void {
    const c = this.countersOf(record.model, record.version);
    c.lastInference = Date.now();
    if (record.outcome === 'error') {
      add(c.fail, record.durationMs);
      return;
    }
    add(c.success, record.durationMs);
    const timings = record.timings;
    if (!timings) return;
    c.inferenceCount++;
    for (const stage of PIPELINE_STAGES) {
      const ms = timings[stage];
      if (ms !== undefined) add(c.stages[stage], ms);
    }
    add(c.stages.total, timings.total);
    if (timings.cache !== undefined) add(timings.inference === undefined ? c.cacheHit : c.cacheMiss, timings.cache);
    c.total.add(timings.total);
    if (timings.inference !== undefined) c.overhead.add(timings.total - timings.inference);
  }

  /** The statistics of one version in the extension's JSON shape (with Caliper's per-stage and overhead additions). */
  versionStats(version: ModelVersion): Record<string, unknown> {
    const c = this.countersOf(version.name, version.version);
    const s = c.stages;
    const input: StatDuration = { count: s.preprocess.count, ns: s.preprocess.ns + s.validate.ns + s.features.ns };
    return {
      name: version.name,
      version: String(version.version),
      last_inference: c.lastInference,
      inference_count: c.inferenceCount,
      execution_count: version.scheduler.batches.executions,
      inference_stats: {
        success: c.success, fail: c.fail, queue: s.queue, compute_input: input, compute_infer: s.inference, compute_output: s.postprocess,
        cache_hit: c.cacheHit, cache_miss: c.cacheMiss,
      },
      batch_stats: version.scheduler.batches.sizes().map((b) => ({
        batch_size: b.batchSize,
        compute_infer: { count: b.count, ns: Math.round(b.computeMs * 1e6) },
      })),
      stages: Object.fromEntries(Object.entries(s).filter(([, v]) => v.count > 0)),
      latency_us: { total: c.total.summaryUs(), overhead: c.overhead.summaryUs() },
      queue_depth: version.scheduler.queueDepth,
      batchable: version.batchAxis.batchable,
      ...(version.batchAxis.batchable ? {} : { batchable_reason: version.batchAxis.reason }),
    };
  }

  /** Every served version of `name` (or of every model), optionally one version. */
  stats(name?: string, version?: string): { model_stats: Record<string, unknown>[] } {
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
