import type { TensorMap } from '../runtime/tensor.ts';
import type { BatchStatistics } from './batch-statistics.ts';

/** One request's tensors on their way to a model instance. `rows` is the size of dim 0 of every input. */
export interface InferenceJob {
  inputs: TensorMap;
  rows: number;
  /** performance.now() time after which the job is answered 504 instead of run. */
  deadline?: number;
  /** 0 is the highest priority. */
  priority?: number;
  outputNames?: string[];
  /** True once the client that asked has left (HTTP socket closed, gRPC call cancelled): a job still queued is dropped. */
  clientGone?: () => boolean;
}

export interface InferenceResult {
  outputs: TensorMap;
  /** Time spent waiting before the batch started. */
  queueMs: number;
  /** Time the batch holding this job took to run (thread hop included). */
  inferenceMs: number;
  /** Rows in the batch that ran this job. */
  batchSize: number;
}

/** Decides when and with what jobs the model runs. */
export interface Scheduler {
  submit(job: InferenceJob): Promise<InferenceResult>;
  /** Jobs waiting, not yet running. */
  readonly queueDepth: number;
  /** Counts per executed batch size. */
  readonly batches: BatchStatistics;
  /** Resolves when nothing is queued or running. */
  drain(): Promise<void>;
}
