import type { FastifyRequest } from 'fastify';
import { CaliperError, toCaliperError } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { PredictOptions } from '../pipeline/predict-pipeline.ts';
import type { StageTimings } from '../pipeline/stage-timings.ts';
import type { RequestProtocol, RequestRecord } from '../observability/request-record.ts';

export type { RequestProtocol, RequestRecord };

/** What one request asked for: a timeout in milliseconds and a priority level (0 highest). */
export interface RequestHints {
  timeoutMs?: string | number;
  priority?: string | number;
}

export type RequestListener = (record: RequestRecord) => void;

/**
 * Wraps each inference request: derives its options (deadline, priority), counts it in flight and tells
 * the listeners (metrics, statistics, SLA monitor) how it ended.
 */
export class RequestObserver {
  private readonly listeners: RequestListener[] = [];
  inflight = 0;
  /** Requests in flight per version, so a retired version is freed only once its last request is answered. */
  private readonly versionInflight = new Map<ModelVersion, { count: number; idle: (() => void)[] }>();
  /** Set during graceful shutdown: readiness turns false and answers close their connections; requests already received are still served. */
  closing = false;

  onRequest(listener: RequestListener): void {
    this.listeners.push(listener);
  }

  optionsFor(version: ModelVersion, request: FastifyRequest): PredictOptions {
    const timeout = request.headers['x-caliper-timeout-ms'] ?? request.headers['x-timeout-ms'];
    const priority = request.headers['x-caliper-priority'];
    const options = this.optionsFrom(version, {
      timeoutMs: typeof timeout === 'string' ? timeout : undefined,
      priority: typeof priority === 'string' ? priority : undefined,
    });
    // A closed connection cannot take the answer: queued work for it is dropped (the socket is read only then).
    const socket = request.raw.socket;
    options.clientGone = () => socket.destroyed;
    return options;
  }

  /** Deadline and priority from what the request asked for, whatever carried it (HTTP headers, gRPC metadata or deadline). */
  optionsFrom(version: ModelVersion, hints: RequestHints): PredictOptions {
    const options: PredictOptions = {};
    const defaultTimeout = version.config.batching.timeoutMs;
    let timeout = defaultTimeout;
    if (hints.timeoutMs !== undefined) {
      const requested = Number(hints.timeoutMs);
      if (!Number.isFinite(requested) || requested <= 0)
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          `x-caliper-timeout-ms: expected a positive number of milliseconds, got "${hints.timeoutMs}"`,
        );
      timeout = Math.min(requested, defaultTimeout);
    }
    options.deadline = performance.now() + timeout;
    if (hints.priority !== undefined) {
      const level = Number(hints.priority);
      const levels = version.config.batching.priorityLevels;
      if (!Number.isInteger(level) || level < 0 || level >= levels) {
        throw new CaliperError(
          'CALIPER_INVALID_INPUT',
          levels === 1
            ? `x-caliper-priority: expected an integer from 0 to 0, got "${hints.priority}": model ${version.name} has one priority level; set batching.priority_levels in its model.yaml to use priorities`
            : `x-caliper-priority: expected an integer from 0 (highest) to ${levels - 1} (batching.priority_levels: ${levels}), got "${hints.priority}"`,
        );
      }
      options.priority = level;
    }
    return options;
  }

  async track<T extends { timings: StageTimings; batchSize: number; rows?: number }>(
    version: ModelVersion,
    protocol: RequestProtocol,
    run: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    this.inflight++;
    let lease = this.versionInflight.get(version);
    if (!lease) {
      lease = { count: 0, idle: [] };
      this.versionInflight.set(version, lease);
    }
    lease.count++;
    try {
      const result = await run();
      this.emit({
        model: version.name,
        version: version.version,
        protocol,
        outcome: 'success',
        timings: result.timings,
        batchSize: result.batchSize,
        ...(result.rows !== undefined ? { rows: result.rows } : {}),
        durationMs: performance.now() - started,
      });
      return result;
    } catch (error) {
      const code = toCaliperError(error).code;
      this.emit({
        model: version.name,
        version: version.version,
        protocol,
        outcome: code === 'CALIPER_CANCELLED' ? 'cancelled' : 'error',
        errorCode: code,
        durationMs: performance.now() - started,
      });
      throw error;
    } finally {
      this.inflight--;
      if (--lease.count === 0) {
        this.versionInflight.delete(version);
        for (const wake of lease.idle.splice(0)) wake();
      }
    }
  }

  /** Resolves once no request tracked on `version` is in flight. */
  whenIdle(version: ModelVersion): Promise<void> {
    const lease = this.versionInflight.get(version);
    if (!lease) return Promise.resolve();
    return new Promise((resolve) => lease.idle.push(resolve));
  }

  private emit(record: RequestRecord): void {
    for (const listener of this.listeners) listener(record);
  }
}
