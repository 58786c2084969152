import type { SessionSpec } from '../../runtime/onnx-session.ts';
import type { ColumnarPlan } from './columnar-plan.ts';

/**
 * Messages between `caliper batch` and the worker thread that scores the second half of a one-pass job
 * (half-scorer.ts, half-worker.ts). Plans cross by structured clone: plain data and typed arrays only.
 */
export type HalfRequest =
  /** Load the model's ONNX Runtime session (as the main thread's in-thread instance was loaded). */
  | { kind: 'load'; spec: SessionSpec }
  /**
   * COPY (the scored SELECT of `from`, or only its prediction columns) TO `target` (`copyOptions`), scoring with `plan`.
   */
  | { kind: 'score'; plan: ColumnarPlan; from: string; target: string; copyOptions: string; predictionsOnly: boolean }
  /** Stop the COPY running (it then fails as interrupted). */
  | { kind: 'interrupt' }
  /** Close the DuckDB connection and the session once they are loaded, and let the thread end. */
  | { kind: 'close' };

export type HalfReply =
  /** The thread's modules are loaded and its DuckDB is opening (a native task on libuv's pool). */
  | { kind: 'opening' }
  /** DuckDB is open and the model's session loaded. */
  | { kind: 'ready' }
  /** Rows scored since the last report. */
  | { kind: 'rows'; rows: number }
  /** The COPY finished: every row was scored and written. */
  | { kind: 'scored' }
  /** The COPY failed: DuckDB's message, or the scoring function's (ROW_PATH_NEEDED, ONNX Runtime's error). */
  | { kind: 'failed'; message: string }
  /** The thread cannot score (its DuckDB or the model's session did not load): the main thread scores the half. */
  | { kind: 'unavailable'; message: string };
