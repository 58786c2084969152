import type { RequestListener, RequestRecord } from '../request-observer.ts';
import type { ModelStatistics, StatisticDuration } from './service-definition.ts';

const NS_PER_MS = 1e6;

interface VersionCounters {
  success: StatisticDuration;
  fail: StatisticDuration;
  queue: StatisticDuration;
  infer: StatisticDuration;
  lastInference: number;
  /** Sum over requests of 1 / executed batch size: the model executions those requests account for. */
  executions: number;
}

const duration = (): StatisticDuration => ({ count: 0, ns: 0 });

/**
 * Per model-version counters in the shape of the statistics extension, fed by the request observer
 * (every protocol: /predict, REST v2 and gRPC).
 */
export class InferenceStatistics {
  private readonly counters = new Map<string, VersionCounters>();

  readonly listener: RequestListener = (record) => this.record(record);

  record(record: RequestRecord): void {
    const key = `${record.model}\u0000${record.version}`;
    let c = this.counters.get(key);
    if (!c) {
      c = { success: duration(), fail: duration(), queue: duration(), infer: duration(), lastInference: 0, executions: 0 };
      this.counters.set(key, c);
    }
    const ns = Math.round(record.durationMs * NS_PER_MS);
    if (record.outcome === 'error') {
      c.fail.count++;
      c.fail.ns += ns;
      return;
    }
    c.success.count++;
    c.success.ns += ns;
    c.lastInference = Date.now();
    if (record.timings?.queue !== undefined) {
      c.queue.count++;
      c.queue.ns += Math.round(record.timings.queue * NS_PER_MS);
    }
    if (record.timings?.inference !== undefined) {
      c.infer.count++;
      c.infer.ns += Math.round(record.timings.inference * NS_PER_MS);
    }
    c.executions += 1 / Math.max(1, record.batchSize ?? 1);
  }

  /** Statistics of one version (zeros when it has not been asked anything yet). */
  of(name: string, version: number): ModelStatistics {
    const c = this.counters.get(`${name}\u0000${version}`);
    return {
      name,
      version: String(version),
      last_inference: c?.lastInference ?? 0,
      inference_count: c?.success.count ?? 0,
      execution_count: Math.round(c?.executions ?? 0),
      inference_stats: {
        success: c?.success ?? duration(), fail: c?.fail ?? duration(), queue: c?.queue ?? duration(),
        compute_input: duration(), compute_infer: c?.infer ?? duration(), compute_output: duration(),
        cache_hit: duration(), cache_miss: duration(),
      },
      batch_stats: [],
    };
  }
}
