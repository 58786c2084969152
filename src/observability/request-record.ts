import type { StageTimings } from '../pipeline/stage-timings.ts';

export type RequestProtocol = 'predict' | 'v2' | 'grpc';

/** What happened to one request, for metrics, statistics and the SLA monitor. */
export interface RequestRecord {
  model: string;
  version: number;
  protocol: RequestProtocol;
  /** cancelled: the client left while the request was queued, and it was dropped before it ran. */
  outcome: 'success' | 'error' | 'cancelled';
  errorCode?: string;
  timings?: StageTimings;
  batchSize?: number;
  /** Rows (inferences) the request asked for; 1 when not said. */
  rows?: number;
  /** Total wall time in milliseconds. */
  durationMs: number;
}
