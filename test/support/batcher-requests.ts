import type { BatchingSpec } from '../../src/config/model-config.ts';
import type { CaliperError } from '../../src/errors.ts';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorData, TensorMap } from '../../src/runtime/tensor.ts';
import type { InferenceJob } from '../../src/scheduler/scheduler.ts';

/** A batching spec for scheduler tests: batching on, up to 8 rows, no delay, a queue of 100, 1 s timeout. */
export const batchingSpec = (over: Partial<BatchingSpec> = {}): BatchingSpec => ({
  enabled: true,
  maxBatchSize: 8,
  preferredBatchSizes: [],
  maxQueueDelayUs: 0,
  maxQueueSize: 100,
  timeoutMs: 1000,
  priorityLevels: 1,
  ...over,
});

/** One request of `values.length` rows of a one-element float32 feature `x`. */
export const rowsJob = (values: number[], over: Partial<InferenceJob> = {}): InferenceJob => ({
  inputs: { x: { type: 'float32', dims: [values.length, 1], data: new Float32Array(values) } },
  rows: values.length,
  ...over,
});

/** One request with an explicit tensor for `x`. */
export const tensorJob = (x: TensorData, over: Partial<InferenceJob> = {}): InferenceJob => ({
  inputs: { x },
  rows: x.dims[0]!,
  ...over,
});

/** A tensor's values as numbers (none for a missing tensor). */
export const numbers = (t: TensorData | undefined): number[] =>
  Array.from((t?.data ?? []) as ArrayLike<number>, Number);

/** One turn of the event loop. */
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The error a request failed with; a fulfilled request fails the test. */
export const failure = (p: Promise<unknown>): Promise<CaliperError> =>
  p.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e as CaliperError,
  );

/** A model that doubles its input `x` into `y`; each run waits until the test releases it, oldest first. */
export class GatedDoubler {
  runs: number[][] = [];
  private gates: (() => void)[] = [];

  run(feeds: TensorMap): Promise<RunResult> {
    const x = feeds.x!;
    const values = Array.from(x.data as Float32Array);
    this.runs.push(values);
    const out = new Float32Array(values.map((v) => v * 2));
    const result: RunResult = { outputs: { y: { type: 'float32', dims: [x.dims[0]!, 1], data: out } }, computeMs: 0 };
    return new Promise((resolve) => this.gates.push(() => resolve(result)));
  }

  /** Runs started and not yet released. */
  get waiting(): number {
    return this.gates.length;
  }

  release(): void {
    this.gates.shift()?.();
  }
}
