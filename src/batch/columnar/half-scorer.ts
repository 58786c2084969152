import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { halvesMinBytesSetting, secondHalfThreadSetting } from '../batch-settings.ts';
import type { SessionSpec } from '../../runtime/onnx-session.ts';
import type { ColumnarPlan } from './columnar-plan.ts';
import type { HalfReply, HalfRequest } from './half-protocol.ts';
import { traceMark } from '../phase-timer.ts';

const workerUrl = new URL('./half-worker-entry.mjs', import.meta.url);

/** Every scorer thread of this process that has not ended (closeHalfScorers). */
const live = new Set<HalfScorer>();

/** The scorer's thread cannot score (it failed to start or load, exited, or was closed). Never leaves the batch modules. */
class HalfScorerUnavailable extends Error {}

/** Whether a score was refused because the thread cannot score (the caller then scores the half itself). */
export function isHalfScorerUnavailable(error: unknown): error is Error {
  return error instanceof HalfScorerUnavailable;
}

/**
 * The worker thread that scores the second half of a one-pass job scored in halves (scoring-copy.ts), with a DuckDB and
 * an ONNX Runtime session of its own (half-worker.ts). Started before the model is loaded, so that its start (modules,
 * DuckDB, the session: ≈ 100-150 ms of CPU) runs on the other core while this thread loads and plans.
 */
export class HalfScorer {
  private scoring: { resolve(): void; reject(error: Error): void; onRows(rows: number): void } | undefined;
  /** Why the thread can no longer score (it failed or exited): every later score is refused with it. */
  private failure: Error | undefined;
  private readonly exited: Promise<void>;
  private closing: Promise<void> | undefined;
  /** Its DuckDB is open and the model's session loaded: a score now starts at once. */
  ready = false;
  /** Resolves once the thread's modules are loaded and its DuckDB is opening. */
  readonly opening: Promise<void>;
  private opened: () => void = () => undefined;

  private constructor(private readonly worker: Worker) {
    // Held by the process only while a half is being scored: an unused scorer never keeps `caliper batch` running.
    worker.unref();
    this.opening = new Promise((resolve) => {
      this.opened = resolve;
    });
    worker.on('message', (reply: HalfReply) => {
      if (reply.kind === 'opening') {
        this.opened();
        return;
      }
      if (reply.kind === 'ready') {
        this.ready = true;
        return;
      }
      const scoring = this.scoring;
      if (!scoring) return;
      if (reply.kind === 'rows') scoring.onRows(reply.rows);
      else {
        this.settle();
        if (reply.kind === 'scored') scoring.resolve();
        else if (reply.kind === 'failed') scoring.reject(new Error(reply.message));
        else scoring.reject(new HalfScorerUnavailable(`the second-half scorer could not load: ${reply.message}`));
      }
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      const scoring = this.scoring;
      this.settle();
      scoring?.reject(this.failure);
    };
    worker.on('error', (error) =>
      fail(new HalfScorerUnavailable(`the second-half scorer's thread failed: ${error.message}`)),
    );
    live.add(this);
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        live.delete(this);
        fail(new HalfScorerUnavailable(`the second-half scorer's thread exited (code ${code})`));
        resolve();
      }),
    );
  }

  /** Starts the thread; it opens its DuckDB at once and waits for `load`. */
  static start(): HalfScorer {
    traceMark('main: second-half thread started');
    return new HalfScorer(new Worker(workerUrl));
  }

  private post(request: HalfRequest): void {
    this.worker.postMessage(request);
  }

  private settle(): void {
    this.scoring = undefined;
    this.worker.unref();
  }

  /** Loads the model the main thread scores with (its in-thread instance's session spec) into the thread. */
  load(spec: SessionSpec): void {
    this.post({ kind: 'load', spec });
  }

  /**
   * Runs `COPY (scored SELECT of from, or its prediction columns only) TO target (copyOptions)` on the thread's DuckDB
   * with `plan` (one score at a time). `onRows` is told the rows scored as they are. Resolves once the COPY has ended; rejects with DuckDB's or ONNX
   * Runtime's message (ROW_PATH_NEEDED among them), or when the thread failed or exited.
   */
  score(
    plan: ColumnarPlan,
    copy: { from: string; target: string; copyOptions: string; predictionsOnly: boolean },
    onRows: (rows: number) => void,
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.scoring) return Promise.reject(new Error('the second-half scorer is already scoring'));
    return new Promise<void>((resolve, reject) => {
      this.scoring = { resolve, reject, onRows };
      this.worker.ref();
      this.post({ kind: 'score', plan, ...copy });
    });
  }

  /** Stops the COPY running on the thread: its score then rejects (interrupted). */
  interrupt(): void {
    if (this.scoring) this.post({ kind: 'interrupt' });
  }

  /**
   * Ends the thread, its DuckDB and session with it, once they have finished loading; the process waits for it to end
   * (a thread terminated while DuckDB opens aborts the process). Resolves when it has ended.
   */
  close(): Promise<void> {
    this.failure ??= new HalfScorerUnavailable('the second-half scorer is closed');
    if (!this.closing) {
      this.worker.ref();
      this.post({ kind: 'close' });
      this.closing = this.exited;
    }
    return this.closing;
  }
}

let primed: HalfScorer | undefined;

/**
 * Starts the worker thread that will score the second half of a one-pass job reading `input`, where the job is likely
 * to be scored in halves: one plain Parquet file at least as large as halves need (halvesMinBytesSetting), on a
 * machine of two cores or more, unless CALIPER_BATCH_SECOND_HALF_THREAD=never. Called as `caliper batch` starts, before
 * its model loads: the thread's start (≈ 100 ms of CPU: modules, DuckDB) runs on the core the main thread's start
 * leaves idle. loadPrimedHalfScorer then loads the model into it. A CSV input keeps both halves on the main thread:
 * whether it is cut depends on a core having been idle since the start (scoring-copy.ts spareCore), which the thread's
 * start would take. Where nothing is started, or the job is not scored in halves after all, the job runs as without it
 * (closeHalfScorers ends an unused thread). A malformed setting starts nothing: the job itself reports it.
 */
export function primeSecondHalf(input: string): void {
  if (primed || !/\.parquet$/i.test(input)) return;
  try {
    if (secondHalfThreadSetting() === 'never') return;
    const stat = statSync(input);
    if (!stat.isFile() || stat.size < halvesMinBytesSetting()) return;
  } catch {
    return;
  }
  primed = HalfScorer.start();
}

/** Loads the model's session (the main thread's in-thread instance's spec) into the primed scorer, if one is. */
export function loadPrimedHalfScorer(spec: SessionSpec): void {
  primed?.load(spec);
}

/** The primed scorer, now the caller's to close; undefined if none was primed. */
export function takePrimedHalfScorer(): HalfScorer | undefined {
  const scorer = primed;
  primed = undefined;
  return scorer;
}

/**
 * Closes every scorer thread of this process (primed, or taken by a job) and resolves once they have ended. Call before
 * the process exits: Node ends the threads that are left at exit, and one ended while its DuckDB opens aborts the
 * process (a job that failed before scoring exited 134 instead of with its message, 1 run in 5).
 */
export async function closeHalfScorers(): Promise<void> {
  primed = undefined;
  await Promise.all([...live].map((scorer) => scorer.close()));
}
