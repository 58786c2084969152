import { toCaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { StageTimings } from '../pipeline/stage-timings.ts';
import type { RequestProtocol, RequestRecord } from '../observability/request-record.ts';

export type { RequestProtocol, RequestRecord };

export type RequestListener = (record: RequestRecord) => void;

/**
 * Wraps each inference request: counts it in flight, holds a lease on its version (ModelVersion.acquire/release, so a
 * retired version is freed after its last request) and tells the listeners (metrics, statistics, SLA monitor) how it ended. Admission (deadline,
 * priority) is src/pipeline/admission.ts.
 */
export class RequestObserver {
  private readonly listeners: RequestListener[] = [];
  inflight = 0;
  /** Set during graceful shutdown: readiness turns false and answers close their connections; requests already received are still served. */
  closing = false;

  onRequest(listener: RequestListener): void {
    this.listeners.push(listener);
  }

  /**
   * Runs `run` as one request of `version` over `protocol`: in flight and holding a lease until it settles, its record
   * emitted to the listeners before the lease is released. Resolves or rejects as `run` does (a throw included).
   */
  track<T extends { timings: StageTimings; batchSize: number; rows?: number }>(
    version: ModelVersion,
    protocol: RequestProtocol,
    run: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    this.inflight++;
    // The version's own lease: a retired version is closed only once its last request is answered.
    version.acquire();
    let running: Promise<T>;
    try {
      running = run();
    } catch (error) {
      running = Promise.reject(error);
    }
    // One reaction on the request's promise, not an async wrapper with its await.
    return running.then(
      (result) => {
        try {
          this.emit({
            model: version.name,
            version: version.version,
            protocol,
            outcome: 'success',
            timings: result.timings,
            batchSize: result.batchSize,
            rows: result.rows,
            durationMs: performance.now() - started,
          });
        } finally {
          this.settled(version);
        }
        return result;
      },
      (error: unknown) => {
        const code = toCaliperError(error).code;
        try {
          this.emit({
            model: version.name,
            version: version.version,
            protocol,
            outcome: code === 'CALIPER_CANCELLED' ? 'cancelled' : 'error',
            errorCode: code,
            durationMs: performance.now() - started,
          });
        } finally {
          this.settled(version);
        }
        throw error;
      },
    );
  }

  private settled(version: ModelVersion): void {
    this.inflight--;
    version.release();
  }

  private emit(record: RequestRecord): void {
    for (const listener of this.listeners) listener(record);
  }
}
