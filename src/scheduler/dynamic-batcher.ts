import type { BatchingSpec, SlaSpec } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { misalignedOutputError } from '../runtime/batch-axis.ts';
import { type BatchParts, stackParts } from '../runtime/batch-input-buffers.ts';
import type { RunResult } from '../runtime/model-instance.ts';
import { typedArrayOf, type TensorData, type TensorMap } from '../runtime/tensor.ts';
import { float32ToFloat16Bits } from '../optimize/onnx/tensor-values.ts';
import { AdaptiveDelayController } from './adaptive-delay.ts';
import { ArrivalRate } from './arrival-rate.ts';
import { BatchStatistics } from './batch-statistics.ts';
import { JobQueue } from './job-queue.ts';
import { cancelledError, DeadlineTimer, deadlineError, priorityLevelOf, queueFullError } from './queue-policy.ts';
import { joinResults, jobOutputs, splitJob } from './row-split.ts';
import type { InferenceJob, InferenceResult, Scheduler } from './scheduler.ts';

/** What the batcher runs batches on (an InstancePool, or a stand-in in tests). */
export interface BatchRunner {
  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult>;
  /**
   * Runs several jobs' inputs as one batch, stacked along dim 0 by the runner (an in-thread instance writes them into
   * an input buffer it reuses). Without it the batcher stacks them into new buffers and calls `run`.
   */
  runRows?(parts: BatchParts, outputNames?: string[]): Promise<RunResult>;
}

export interface DynamicBatcherOptions {
  batching: BatchingSpec;
  /** Batches allowed to run at once (the number of model instances). */
  concurrency: number;
  /** The budget `max_queue_delay_us: auto` tunes against. */
  sla?: SlaSpec;
  /** Model name, for error messages. */
  model?: string;
  /**
   * Tensors [rows, length] of a variable length, with their pad value: requests of different lengths batch
   * together, each padded along axis 1 to the batch's longest row (model.yaml `pad`/`attention_mask`).
   */
  padding?: ReadonlyMap<string, number>;
}

interface QueuedJob {
  inputs: TensorMap;
  rows: number;
  deadline: number;
  outputNames: string[] | undefined;
  clientGone: (() => boolean) | undefined;
  enqueuedAt: number;
  resolve(result: InferenceResult): void;
  reject(error: Error): void;
}

/** Why a batch left the queue; the adaptive delay only grows when batches leave on the timer half empty. */

/**
 * Whether two jobs' inputs agree beyond dim 0 (names, types, trailing dims; a padded tensor's axis 1 may differ), so
 * they can share a batch. Compared in place: no per-request key string is built.
 */
function sameShape(a: TensorMap, b: TensorMap, padding: ReadonlyMap<string, number> | undefined): boolean {
  if (a === b) return true;
  let names = 0;
  for (const name in a) {
    const x = a[name]!;
    const y = b[name];
    if (y === undefined || x.type !== y.type || x.dims.length !== y.dims.length) return false;
    const padded = padding?.has(name) === true && x.dims.length === 2 && x.type !== 'string';
    for (let i = padded ? 2 : 1; i < x.dims.length; i++) if (x.dims[i] !== y.dims[i]) return false;
    names++;
  }
  for (const _ in b) names--;
  return names === 0;
}

/** Rank-2 tensors of different lengths along axis 1, each padded with `pad` to the longest. */
function padToLongest(parts: TensorData[], pad: number): TensorData[] {
  let longest = 0;
  for (const p of parts) longest = Math.max(longest, p.dims[1] ?? 0);
  return parts.map((p) => {
    const [rows = 0, length = 0] = p.dims;
    // Only a padded field's tensors come here: model.yaml pads one numeric column of a variable-length array, [rows,
    // length]; the string test is for the type checker.
    if (length === longest || p.type === 'string') return p;
    const out = typedArrayOf(p.type, rows * longest) as Float64Array;
    const fill: number | bigint =
      out instanceof BigInt64Array || out instanceof BigUint64Array
        ? BigInt(pad)
        : p.type === 'float16'
          ? float32ToFloat16Bits([pad])[0]!
          : pad;
    (out as unknown as { fill(v: number | bigint): void }).fill(fill);
    const data = p.data as Float64Array;
    for (let r = 0; r < rows; r++) out.set(data.subarray(r * length, (r + 1) * length), r * longest);
    return { type: p.type, dims: [rows, longest], data: out };
  });
}

/** Gaps between arrivals count as at most this many queue delays in the arrival rate (ArrivalRate.arrive). */
const LONGEST_GAP_IN_DELAYS = 16;

const sameNames = (a: string[] | undefined, b: string[] | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((n, i) => n === b[i]));

/**
 * Per-model dynamic batcher. A batch leaves as soon as it reaches max_batch_size or a preferred size (cut down to the
 * largest preferred size the waiting rows fill, or, with `cut_to_preferred: false`, taking every waiting row that fits
 * max_batch_size), otherwise when its oldest request has waited max_queue_delay_us, or at once when an instance is free and the
 * recent arrival rate promises fewer than one more request within that delay. Priority levels are served in
 * order (0 first), FIFO within a level. A full queue rejects at once (503 + Retry-After); a request
 * whose deadline passes while queued is answered 504; a request larger than the maximum is split and
 * reassembled.
 */
export class DynamicBatcher implements Scheduler {
  readonly batches = new BatchStatistics();
  readonly delayController: AdaptiveDelayController | undefined;
  private readonly queues: JobQueue<QueuedJob>[];
  private readonly spec: BatchingSpec;
  private readonly concurrency: number;
  private readonly model: string;
  private readonly padding: ReadonlyMap<string, number> | undefined;
  private queued = 0;
  private running = 0;
  private pumpScheduled = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private readonly deadlines: DeadlineTimer<QueuedJob>;
  private idleWaiters: (() => void)[] = [];
  private readonly arrivals = new ArrivalRate();

  constructor(
    private readonly runner: BatchRunner,
    options: DynamicBatcherOptions,
  ) {
    this.spec = options.batching;
    this.concurrency = Math.max(1, options.concurrency);
    this.padding = options.padding;
    this.model = options.model ?? 'model';
    this.queues = Array.from({ length: Math.max(1, this.spec.priorityLevels) }, () => new JobQueue<QueuedJob>());
    this.deadlines = new DeadlineTimer(
      this.model,
      this.queues,
      () => this.queued--,
      () => this.notifyIfIdle(),
    );
    if (this.spec.maxQueueDelayUs === 'auto') {
      this.delayController = new AdaptiveDelayController({ p99BudgetMs: options.sla?.p99Ms ?? 50 });
    }
  }

  get queueDepth(): number {
    return this.queued;
  }

  /** The queue delay in force now, microseconds (tuned at run time when configured as auto). */
  get delayUs(): number {
    return this.delayController ? this.delayController.delayUs : (this.spec.maxQueueDelayUs as number);
  }

  submit(job: InferenceJob): Promise<InferenceResult> {
    if (job.rows <= this.spec.maxBatchSize) return this.enqueue(job);
    // Larger than a batch: cut into batches, answered together once every part has run.
    return Promise.all(splitJob(job, this.spec.maxBatchSize).map((part) => this.enqueue(part))).then(joinResults);
  }

  private enqueue(job: InferenceJob): Promise<InferenceResult> {
    if (this.queued >= this.spec.maxQueueSize)
      return Promise.reject(queueFullError(this.model, this.spec.maxQueueSize));
    const now = performance.now();
    const deadline = job.deadline ?? Infinity;
    if (deadline <= now) return Promise.reject(this.deadlineError(0));
    const level = priorityLevelOf(job.priority, this.queues.length);
    return new Promise<InferenceResult>((resolve, reject) => {
      this.queues[level]!.push({
        inputs: job.inputs,
        rows: job.rows,
        deadline,
        outputNames: job.outputNames,
        clientGone: job.clientGone,
        enqueuedAt: now,
        resolve,
        reject,
      });
      this.queued++;
      this.arrivals.arrive(now, (LONGEST_GAP_IN_DELAYS * this.delayUs) / 1000);
      this.deadlines.watch(deadline, now);
      this.schedulePump();
    });
  }

  private deadlineError(waitedMs: number): CaliperError {
    return deadlineError(this.model, waitedMs);
  }

  private cancelledError(waitedMs: number): CaliperError {
    return cancelledError(this.model, waitedMs);
  }

  /** Requests that arrive in the same I/O phase are all queued before the batch is formed. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queued > 0) {
      const now = performance.now();
      const candidates: QueuedJob[] = [];
      let rows = 0;
      let blocked = false;
      let oldest = Infinity;
      let first: QueuedJob | undefined;
      for (const queue of this.queues) {
        let i = 0;
        for (let job = queue.peek(0); job !== undefined; job = queue.peek(++i)) {
          // A job whose deadline passed, or whose client left, leaves the queue without running.
          const gone = job.clientGone?.() === true;
          if (gone || job.deadline <= now) {
            queue.removeWhere((j) => j === job);
            this.queued--;
            job.reject(gone ? this.cancelledError(now - job.enqueuedAt) : this.deadlineError(now - job.enqueuedAt));
            job = undefined;
            i--;
            continue;
          }
          if (job.enqueuedAt < oldest) oldest = job.enqueuedAt;
          first ??= job;
          if (blocked) break;
          // Jobs batch together only when their inputs agree beyond dim 0.
          if (rows + job.rows > this.spec.maxBatchSize || !sameShape(job.inputs, first.inputs, this.padding)) {
            blocked = true;
            break;
          }
          candidates.push(job);
          rows += job.rows;
        }
      }
      if (candidates.length === 0) break;
      // Only a batch that left because its oldest request's delay ended tells the auto delay how full it got.
      let byDelay = false;
      let take = candidates.length;
      // A full batch, or one the next queued job cannot join, leaves whole and at once.
      if (!blocked && rows < this.spec.maxBatchSize) {
        const preferred = this.largestPreferred(rows);
        if (preferred !== undefined) {
          // Cut down to the preferred size, unless cut_to_preferred: false lets the batch take every waiting row that
          // fits (the candidates: at most max_batch_size rows).
          if (this.spec.cutToPreferred !== false) {
            let sum = 0;
            take = 0;
            while (take < candidates.length && sum + candidates[take]!.rows <= preferred)
              sum += candidates[take++]!.rows;
            if (take === 0) take = 1;
          }
        } else {
          const waitedUs = (now - oldest) * 1000;
          const delay = this.delayUs;
          // Timers count whole milliseconds: the wait left, rounded up (so at least one; see wakeAfter).
          const waitMs = Math.ceil((delay - waitedUs) / 1000);
          // An instance is free (the loop runs only then). Waiting pays only if company is expected within that wait:
          // at a rate of fewer than one arrival per wait the batch leaves now, as if its delay had run out, instead
          // of waking the process again on the timer to run the same batch later.
          if (waitedUs >= delay || this.arrivals.expectedWithin(waitMs) < 1) {
            byDelay = true;
          } else {
            this.wakeAfter(waitMs);
            break;
          }
        }
      }
      this.dispatch(candidates.slice(0, take), byDelay, now);
    }
    this.notifyIfIdle();
  }

  private largestPreferred(rows: number): number | undefined {
    const sizes = this.spec.preferredBatchSizes;
    for (let i = sizes.length - 1; i >= 0; i--) if (sizes[i]! <= rows) return sizes[i];
    return undefined;
  }

  /**
   * Arms the one timer that ends a partly filled batch's wait, `ms` (a whole number, at least 1) from now; arrivals
   * and finished batches pump on their own (enqueue, dispatch), so nothing polls in between. Timers count whole
   * milliseconds: the caller rounds a wait up, a wait of less than one to one (a lone request under a sub-millisecond delay
   * waits about a millisecond), because polling with setImmediate to hit the exact microsecond kept the event loop
   * spinning, and its core busy, while any batch waited.
   */
  private wakeAfter(ms: number): void {
    if (this.wakeTimer !== undefined) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.pump();
    }, ms);
  }

  private dispatch(jobs: QueuedJob[], byDelay: boolean, now: number): void {
    // pump takes a prefix of the queues in order (a queue's jobs from its head, the next queue only once this one
    // is taken whole) and nothing runs between pump and here: each job is the head of its queue when its turn comes.
    // A plain loop, not a find() closure per job.
    for (const job of jobs) {
      for (const q of this.queues) {
        if (q.peek() === job) {
          q.shift();
          break;
        }
      }
    }
    this.queued -= jobs.length;
    this.running++;
    let rows = 0;
    for (const job of jobs) rows += job.rows;
    const names = jobs[0]!.outputNames;
    const outputNames = jobs.every((j) => sameNames(j.outputNames, names)) ? names : undefined;
    this.delayController?.observeBatch(byDelay ? rows / this.spec.maxBatchSize : 1);
    this.runBatch(jobs, outputNames)
      .then(
        (result) => {
          const finished = result.finishedAt ?? performance.now();
          const inferenceMs = finished - now;
          this.batches.record(rows, inferenceMs);
          // Split back only along the batch axis: an output of any other first dimension fails every request of the batch.
          const misaligned = misalignedOutputError(this.model, result.outputs, rows);
          if (misaligned) {
            for (const job of jobs) job.reject(misaligned);
            return;
          }
          let offset = 0;
          for (const job of jobs) {
            const outputs = jobOutputs(result.outputs, offset, job.rows, rows, job.outputNames);
            offset += job.rows;
            const queueMs = now - job.enqueuedAt;
            this.delayController?.observeLatency(queueMs + inferenceMs);
            job.resolve({ outputs, queueMs, inferenceMs, batchSize: rows });
          }
        },
        (error: unknown) => {
          const failure = new CaliperError(
            'CALIPER_INFERENCE_FAILED',
            `model "${this.model}": inference failed: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error },
          );
          for (const job of jobs) job.reject(failure);
        },
      )
      .finally(() => {
        this.running--;
        this.pump();
      });
  }

  /** One job's inputs as they are; several jobs' stacked (padded first where model.yaml pads), by the runner if it can. */
  private runBatch(jobs: readonly QueuedJob[], outputNames: string[] | undefined): Promise<RunResult> {
    if (jobs.length === 1) return this.runner.run(jobs[0]!.inputs, outputNames);
    const parts: BatchParts = {};
    for (const name in jobs[0]!.inputs) {
      const tensors = jobs.map((j) => j.inputs[name]!);
      const pad = this.padding?.get(name);
      parts[name] = pad === undefined ? tensors : padToLongest(tensors, pad);
    }
    return this.runner.runRows
      ? this.runner.runRows(parts, outputNames)
      : this.runner.run(stackParts(parts), outputNames);
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
