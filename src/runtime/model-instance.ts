import { Worker } from 'node:worker_threads';
import { type BatchParts, BatchInputBuffers, stackParts } from './batch-input-buffers.ts';
import type { ModelSignature } from './model-signature.ts';
import { OnnxSession, type SessionSpec } from './onnx-session.ts';
import type { TensorMap } from './tensor.ts';
import { transferListOf, type WorkerReply, type WorkerRequest } from './worker-protocol.ts';

export interface RunResult {
  outputs: TensorMap;
  /** Time ONNX Runtime spent computing (excludes the thread hop). */
  computeMs: number;
  /**
   * performance.now() when the outputs were ready in this thread (a worker's reply arrived). Callers time the
   * run with it rather than when their continuation runs, which can be long after under load.
   */
  finishedAt?: number;
}

/** One loaded copy of a model that can run feeds: in this thread, or on a worker thread of its own. */
export interface ModelInstance {
  readonly id: number;
  readonly signature: ModelSignature;
  /** Runs started and not yet finished. */
  readonly inflight: number;
  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult>;
  /** Runs several requests' inputs as one batch, stacked along dim 0 where the instance keeps them (see BatchParts). */
  runRows(parts: BatchParts, outputNames?: string[]): Promise<RunResult>;
  release(): Promise<void>;
}

/** Runs in the calling thread: no hop, but the event loop is blocked while the model computes. */
export class InThreadInstance implements ModelInstance {
  /** A run finishes before `run` returns, so none is ever left in flight. */
  readonly inflight = 0;
  /** The batch's rows are stacked here: the run is synchronous, so a buffer is free again when `runRows` returns. */
  private readonly inputBuffers = new BatchInputBuffers();
  private constructor(
    readonly id: number,
    private readonly session: OnnxSession,
  ) {}

  static async load(id: number, spec: SessionSpec): Promise<InThreadInstance> {
    return new InThreadInstance(id, await OnnxSession.create(spec));
  }

  get signature(): ModelSignature {
    return this.session.signature;
  }

  /**
   * Computes now and returns the outputs (the calling thread blocks while the model runs): for a caller that cannot
   * wait for a promise, such as a DuckDB scalar function scoring a vector mid-query. Throws ORT's errors.
   */
  runSync(feeds: TensorMap, outputNames?: readonly string[]): TensorMap {
    return this.session.run(feeds, outputNames);
  }

  run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult> {
    const started = performance.now();
    try {
      const outputs = this.session.run(feeds, outputNames);
      const finishedAt = performance.now();
      return Promise.resolve({ outputs, computeMs: finishedAt - started, finishedAt });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Stacks the parts into this instance's reused input buffers and runs them at once (the outputs never share
   * memory with an input: ONNX Runtime returns them in buffers of their own, test/runtime/batch-input-buffers.test.ts).
   */
  runRows(parts: BatchParts, outputNames?: string[]): Promise<RunResult> {
    return this.run(this.inputBuffers.stack(parts), outputNames);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

const workerUrl = new URL('./session-worker-entry.mjs', import.meta.url);

interface Pending {
  resolve(reply: { message: WorkerReply; arrivedAt: number }): void;
  reject(error: Error): void;
}

/** Runs on a worker thread with its own ONNX Runtime session; tensors cross as transferred buffers. */
export class WorkerInstance implements ModelInstance {
  inflight = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;
  signature: ModelSignature = { inputs: [], outputs: [] };

  private constructor(
    readonly id: number,
    private readonly worker: Worker,
  ) {
    worker.on('message', (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.kind === 'error') waiter.reject(new Error(reply.message));
      else waiter.resolve({ message: reply, arrivedAt: performance.now() });
    });
    const failAll = (error: Error): void => {
      this.failure = error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`model instance ${id} worker exited (code ${code})`)));
  }

  static async load(id: number, spec: SessionSpec): Promise<WorkerInstance> {
    const worker = new Worker(workerUrl);
    const instance = new WorkerInstance(id, worker);
    try {
      const { message: reply } = await instance.request({ kind: 'load', id: 0, spec });
      if (reply.kind === 'loaded') instance.signature = reply.signature;
      return instance;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
  }

  private request(
    message: WorkerRequest,
    transfer: ArrayBuffer[] = [],
  ): Promise<{ message: WorkerReply; arrivedAt: number }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  async run(feeds: TensorMap, outputNames?: string[]): Promise<RunResult> {
    this.inflight++;
    try {
      const message: WorkerRequest = outputNames
        ? { kind: 'run', id: 0, feeds, outputNames }
        : { kind: 'run', id: 0, feeds };
      const { message: reply, arrivedAt } = await this.request(message, transferListOf(feeds));
      if (reply.kind !== 'result') throw new Error(`unexpected reply ${reply.kind}`);
      return { outputs: reply.outputs, computeMs: reply.computeMs, finishedAt: arrivedAt };
    } finally {
      this.inflight--;
    }
  }

  /** Stacks the parts into new buffers, which are transferred to the worker (a reused buffer could not be). */
  runRows(parts: BatchParts, outputNames?: string[]): Promise<RunResult> {
    return this.run(stackParts(parts), outputNames);
  }

  async release(): Promise<void> {
    try {
      await this.request({ kind: 'release', id: 0 });
    } catch {
      // A worker that already died has nothing left to release.
    }
    await this.worker.terminate();
  }
}
