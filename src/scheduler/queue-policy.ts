import { CaliperError } from '../errors.ts';
import type { JobQueue } from './job-queue.ts';

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

/** What the deadline timer reads of a waiting job: its deadline and arrival (performance.now() ms) and its answer. */
export interface WaitingJob {
  deadline: number;
  enqueuedAt: number;
  reject(error: Error): void;
}

/**
 * One timer per scheduler for the earliest deadline among its priority queues (both schedulers share it). When it
 * fires, every waiting job whose deadline has passed leaves its queue and is answered 504, and the timer is armed for
 * the next deadline. `removed()` is called before each such job is answered (the scheduler keeps its queue count),
 * `swept()` once after each pass (the scheduler wakes whoever waits for it to drain).
 */
export class DeadlineTimer<T extends WaitingJob> {
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;

  constructor(
    private readonly model: string,
    private readonly queues: readonly JobQueue<T>[],
    private readonly removed: () => void,
    private readonly swept: () => void,
  ) {}

  /** A job with `deadline` now waits: arms the timer for it unless the timer is already set for an earlier one. */
  watch(deadline: number, now: number): void {
    if (deadline < this.armedAt) this.arm(deadline, now);
  }

  private arm(deadline: number, now: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedAt = deadline;
    this.timer = setTimeout(() => this.expire(), Math.max(0, Math.ceil(deadline - now)));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const queue of this.queues) {
      for (const job of queue.removeWhere((j) => j.deadline <= now)) {
        this.removed();
        job.reject(deadlineError(this.model, now - job.enqueuedAt));
      }
      for (const job of queue) if (job.deadline < next) next = job.deadline;
    }
    if (next !== Infinity) this.arm(next, now);
    this.swept();
  }
}
