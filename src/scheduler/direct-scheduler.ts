import type { BatchingSpec } from '../config/model-config.ts';
import type { RunResult } from '../runtime/model-instance.ts';
import type { TensorMap } from '../runtime/tensor.ts';
import { BatchStatistics } from './batch-statistics.ts';
import { JobQueue } from './job-queue.ts';
import { cancelledError, DeadlineTimer, deadlineError, priorityLevelOf, queueFullError } from './queue-policy.ts';
import type { InferenceJob, InferenceResult, Scheduler } from './scheduler.ts';

/** What the direct scheduler runs jobs on (an InstancePool, or a stand-in in tests). */
export interface JobRunner {
  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult>;
}

export interface DirectSchedulerOptions {
  /** The queue policy (max_queue_size, priority_levels); batching itself is off. Defaults as model.yaml's. */
  batching?: Pick<BatchingSpec, 'maxQueueSize' | 'priorityLevels'>;
  /**
   * Jobs allowed to run at once. One per in-thread instance (its run blocks the thread anyway); two per worker
   * instance, so a worker has its next job in hand when it finishes one instead of waiting for the round trip.
   */
  concurrency?: number;
  /** Model name, for error messages. */
  model?: string;
}

interface Waiting {
  job: InferenceJob;
  deadline: number;
  enqueuedAt: number;
  resolve(result: InferenceResult): void;
  reject(error: unknown): void;
}

/**
 * No batching: each job runs alone, on the least loaded instance, as soon as one is free. While every instance is
 * busy, jobs wait under the same policy as the dynamic batcher's (src/scheduler/queue-policy.ts): a bounded queue (a
 * full one answers 503 + Retry-After), per-request deadlines (504 once passed, without running), priority levels
 * served in order (0 first) and FIFO within a level, and a job whose client left is dropped before it runs.
 */
export class DirectScheduler implements Scheduler {
  readonly batches = new BatchStatistics();
  private readonly queues: JobQueue<Waiting>[];
  private readonly maxQueueSize: number;
  private readonly concurrency: number;
  private readonly model: string;
  private queued = 0;
  private running = 0;
  private readonly deadlines: DeadlineTimer<Waiting>;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly runner: JobRunner,
    options: DirectSchedulerOptions = {},
  ) {
    this.maxQueueSize = options.batching?.maxQueueSize ?? 10_000;
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.model = options.model ?? 'model';
    const levels = Math.max(1, options.batching?.priorityLevels ?? 1);
    this.queues = Array.from({ length: levels }, () => new JobQueue<Waiting>());
    this.deadlines = new DeadlineTimer(
      this.model,
      this.queues,
      () => this.queued--,
      () => this.notifyIfIdle(),
    );
  }

  get queueDepth(): number {
    return this.queued;
  }

  submit(job: InferenceJob): Promise<InferenceResult> {
    const now = performance.now();
    if (job.clientGone?.() === true) return Promise.reject(cancelledError(this.model, 0));
    const deadline = job.deadline ?? Infinity;
    if (deadline <= now) return Promise.reject(deadlineError(this.model, 0));
    if (this.running < this.concurrency && this.queued === 0) return this.start(job, now, now);
    if (this.queued >= this.maxQueueSize) return Promise.reject(queueFullError(this.model, this.maxQueueSize));
    return new Promise<InferenceResult>((resolve, reject) => {
      this.queues[priorityLevelOf(job.priority, this.queues.length)]!.push({
        job,
        deadline,
        enqueuedAt: now,
        resolve,
        reject,
      });
      this.queued++;
      this.deadlines.watch(deadline, now);
    });
  }

  /** Runs one job now; its queue time is what it waited since `enqueuedAt`. */
  private start(job: InferenceJob, enqueuedAt: number, now: number): Promise<InferenceResult> {
    this.running++;
    let run: Promise<RunResult>;
    try {
      run = this.runner.run(job.inputs, job.outputNames);
    } catch (error) {
      run = Promise.reject(error);
    }
    return run.then(
      ({ outputs, finishedAt }) => {
        const inferenceMs = (finishedAt ?? performance.now()) - now;
        this.batches.record(job.rows, inferenceMs);
        this.finished();
        return { outputs, queueMs: now - enqueuedAt, inferenceMs, batchSize: job.rows };
      },
      (error: unknown) => {
        this.finished();
        throw error;
      },
    );
  }

  /** A run ended: the next waiting jobs start (highest level first), dropping those whose deadline or client is gone. */
  private finished(): void {
    this.running--;
    while (this.running < this.concurrency && this.queued > 0) {
      const next = this.nextWaiting();
      if (!next) break;
      const now = performance.now();
      if (next.job.clientGone?.() === true) next.reject(cancelledError(this.model, now - next.enqueuedAt));
      else if (next.deadline <= now) next.reject(deadlineError(this.model, now - next.enqueuedAt));
      else this.start(next.job, next.enqueuedAt, now).then(next.resolve, next.reject);
    }
    this.notifyIfIdle();
  }

  private nextWaiting(): Waiting | undefined {
    for (const queue of this.queues) {
      const waiting = queue.shift();
      if (waiting) {
        this.queued--;
        return waiting;
      }
    }
    return undefined;
  }

  private notifyIfIdle(): void {
    if (this.queued === 0 && this.running === 0 && this.idleWaiters.length > 0)
      for (const wake of this.idleWaiters.splice(0)) wake();
  }

  drain(): Promise<void> {
    if (this.queued === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
