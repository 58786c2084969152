import { CaliperError } from '../errors.ts';

/**
 * The queue policy every scheduler applies (the dynamic batcher and the direct scheduler alike): a bounded queue
 * (`batching.max_queue_size`), per-request deadlines and priority levels (`batching.priority_levels`, 0 first). The
 * errors a request gets when the policy refuses it are built here once, so batching on or off answers the same.
 */

/** 503 with Retry-After: `maxQueueSize` requests are already waiting. */
export function queueFullError(model: string, maxQueueSize: number): CaliperError {
  return new CaliperError(
    'CALIPER_QUEUE_FULL',
    `model "${model}": queue is full (${maxQueueSize} requests waiting, batching.max_queue_size); retry later`,
    { retryAfterSeconds: 1 },
  );
}

/** 504: the request's deadline passed after `waitedMs` in the queue (0 when it arrived already late). */
export function deadlineError(model: string, waitedMs: number): CaliperError {
  return new CaliperError(
    'CALIPER_DEADLINE_EXCEEDED',
    `model "${model}": deadline passed after ${waitedMs.toFixed(1)} ms in the queue (timeout_ms or x-caliper-timeout-ms)`,
  );
}

/** The client left after `waitedMs` in the queue: its request is dropped before it runs. */
export function cancelledError(model: string, waitedMs: number): CaliperError {
  return new CaliperError(
    'CALIPER_CANCELLED',
    `model "${model}": the client left after ${waitedMs.toFixed(1)} ms in the queue; the request was dropped before it ran`,
  );
}

/** The queue a job of `priority` waits in: levels 0 (highest) to `levels - 1`, out-of-range values clamped. */
export function priorityLevelOf(priority: number | undefined, levels: number): number {
  return Math.min(Math.max(0, Math.trunc(priority ?? 0)), levels - 1);
}
