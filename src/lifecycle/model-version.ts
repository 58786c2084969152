import { answerFingerprint } from '../cache/answer-fingerprint.ts';
import type { ResponseCache } from '../cache/response-cache.ts';
import { openVersionCache } from '../cache/version-cache.ts';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import { featureInputs } from '../features/feature-config.ts';
import { FeatureLookup } from '../pipeline/feature-lookup.ts';
import { loadModelHooks, type ModelHooks } from '../pipeline/model-hooks.ts';
import { Postprocessor } from '../pipeline/postprocess.ts';
import { Preprocessor } from '../pipeline/preprocess.ts';
import { RequestSchema } from '../pipeline/request-schema.ts';
import { checkConfigAgainstSignature } from '../pipeline/signature-check.ts';
import { InstancePool } from '../runtime/instance-pool.ts';
import { batchAxisOf, type BatchAxis } from '../runtime/batch-axis.ts';
import type { ModelSignature } from '../runtime/model-signature.ts';
import type { ModelProto } from '../optimize/onnx/onnx-types.ts';
import { describeUnservedOutputs } from '../runtime/unserved-outputs.ts';
import { describeFeeds, warmUpFeeds } from '../runtime/warm-up-feeds.ts';
import { defaultScheduler, directScheduler } from '../scheduler/scheduler-factory.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';

export type VersionState = 'loading' | 'ready' | 'failed' | 'unloading';

/**
 * Builds the scheduler for a loaded version; the default batches dynamically when model.yaml has `batching` and
 * the model's batch axis is proven (`batchAxis`).
 */
export type SchedulerFactory = (
  pool: InstancePool,
  config: ModelConfig,
  signature: ModelSignature,
  batchAxis: BatchAxis,
) => Scheduler;

/**
 * Reads the model file (without external data) on the first call and returns the same decoded ModelProto after; only
 * then are protobufjs and the ONNX schema imported, so a model whose session metadata says enough never loads them.
 * Rejects with CALIPER_ONNX_INVALID when the file cannot be read or decoded.
 */
export function modelFileReader(modelPath: string): () => Promise<ModelProto> {
  let read: Promise<ModelProto> | undefined;
  return () => {
    read ??= import('../optimize/onnx/model-io.ts').then(({ readModelFile }) =>
      readModelFile(modelPath, { loadExternalData: false }),
    );
    return read;
  };
}

/** The batch-axis decision for a model file: by its symbolic dims, else by walking its graph (`readModel`). */
export async function decideBatchAxis(
  signature: ModelSignature,
  readModel: () => Promise<ModelProto>,
): Promise<BatchAxis> {
  const byNames = batchAxisOf(signature);
  if (byNames.batchable || signature.inputs.some((i) => i.shape[0] !== -1)) return byNames;
  try {
    return batchAxisOf(signature, await readModel());
  } catch {
    return byNames;
  }
}

export const directSchedulerFactory: SchedulerFactory = (pool, config) => directScheduler(pool, config);

/** One version of a model, loaded and warmed: everything a request needs to be answered. */
export class ModelVersion {
  state: VersionState = 'loading';
  /** What its answers depend on (model bytes, model.yaml, hooks, answer format), set when model.yaml enables a cache. */
  answerFingerprint: string | undefined;
  /** The version's response cache (model.yaml `cache`), opened at load and closed at unload; undefined when off. */
  cache: ResponseCache | undefined;
  /** Requests holding a lease on this version (acquire/release): a retired version is closed once none is left. */
  private leases = 0;
  /** Resolvers waiting for the last lease to be released. */
  private readonly idleWaiters: (() => void)[] = [];
  /** takesInt64, decided on first use. */
  private int64: boolean | undefined;

  private constructor(
    readonly config: ModelConfig,
    readonly version: number,
    readonly modelPath: string,
    readonly pool: InstancePool,
    readonly scheduler: Scheduler,
    readonly schema: RequestSchema,
    readonly preprocessor: Preprocessor,
    readonly postprocessor: Postprocessor,
    readonly hooks: ModelHooks | undefined,
    /** Whether requests may share a run along dim 0, decided at load; why not when they may not. */
    readonly batchAxis: BatchAxis,
    /** The features stage (its feature-store handle), when model.yaml has a `features` section; closed at unload. */
    readonly features: FeatureLookup | undefined,
  ) {}

  /**
   * Takes a lease for one request: the version is not closed by `retire()` while it is held. Every acquire must be
   * followed by exactly one release (in a finally).
   */
  acquire(): void {
    this.leases++;
  }

  /** Gives back a lease taken by `acquire()`; the last one wakes whoever waits in `whenIdle()`. */
  release(): void {
    if (this.leases === 0) throw new Error(`model ${this.name} version ${this.version}: release() without acquire()`);
    if (--this.leases === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Leases held now (requests in flight on this version). */
  get inFlight(): number {
    return this.leases;
  }

  /** Resolves once no lease is held. */
  whenIdle(): Promise<void> {
    if (this.leases === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * For a version the repository no longer routes to (ModelRepository.replace returned it): waits until its last
   * lease is released (every request already on it is answered), then unloads it.
   */
  async retire(): Promise<void> {
    await this.whenIdle();
    await this.unload();
  }

  get name(): string {
    return this.config.name;
  }

  get signature(): ModelSignature {
    return this.pool.signature;
  }

  /**
   * Whether a request body for this version may carry an integer beyond 2^53 that has to stay exact: a model input of
   * type int64 or uint64 (v2 and gRPC tensors), an integer request field or array of integers (/predict), or a hooks
   * module (it may read any field). Otherwise JSON.parse's rounding of such a literal cannot change an answer.
   */
  get takesInt64(): boolean {
    this.int64 ??=
      this.config.hooks !== undefined ||
      this.config.inputs.some((f) => f.type === 'integer' || f.items === 'integer') ||
      this.signature.inputs.some((t) => t.type === 'int64' || t.type === 'uint64');
    return this.int64;
  }

  /** True when requests can be stacked along dim 0: every input's and every output's first dimension is the proven batch axis. */
  get batchable(): boolean {
    return this.batchAxis.batchable;
  }

  /** The load-time log line for a version whose model.yaml asks for batching its outputs cannot take; undefined otherwise. */
  get batchingNotice(): string | undefined {
    if (this.batchAxis.batchable || !this.config.batching.enabled) return undefined;
    return `model ${this.name} version ${this.version}: dynamic batching disabled, one request per run: ${this.batchAxis.reason}`;
  }

  /**
   * Load-time warnings: batching disabled (above), and a lookup whose `unknown` is a negative number feeding an
   * integer tensor, whose values index something (an embedding row): a negative index reads from the end, so an
   * unseen category would silently take the last row.
   */
  get loadNotices(): string[] {
    const notices = this.batchingNotice ? [this.batchingNotice] : [];
    for (const tensor of this.config.tensors) {
      if (!/int/.test(tensor.dtype)) continue;
      for (const column of tensor.columns) {
        if (column.kind === 'lookup' && typeof column.unknown === 'number' && column.unknown < 0) {
          notices.push(
            `model ${this.name} version ${this.version}: preprocess tensor ${tensor.name} (${tensor.dtype}) looks up ${column.field} with unknown: ${column.unknown}; ` +
              "a negative index reads from the end of what it indexes (an embedding's last row) for unseen categories: reserve a row for them (unknown: N) or refuse them (unknown: error)",
          );
        }
      }
    }
    return notices;
  }

  /** Creates the sessions (pre-loading), checks model.yaml against the ONNX signature, then warms every instance. */
  static async load(
    config: ModelConfig,
    version: number,
    modelPath: string,
    schedulerFactory: SchedulerFactory = defaultScheduler,
  ): Promise<ModelVersion> {
    const preprocessor = new Preprocessor({ ...config, inputs: [...config.inputs, ...featureInputs(config.features)] });
    const postprocessor = new Postprocessor(config);
    const hooks = config.hooks ? await loadModelHooks(config.dir, config.hooks, config.file) : undefined;
    const schema = new RequestSchema(config, hooks?.extraFields);
    let pool: InstancePool;
    try {
      pool = await InstancePool.load(modelPath, config);
    } catch (error) {
      throw new CaliperError(
        'CALIPER_MODEL_LOAD_FAILED',
        `${config.name} version ${version}: ONNX Runtime cannot load ${modelPath}: ${(error as Error).message}`,
      );
    }
    let features: FeatureLookup | undefined;
    let cache: ResponseCache | undefined;
    try {
      const readModel = modelFileReader(modelPath);
      if (pool.signature.unserved) pool.signature.unserved = await describeUnservedOutputs(pool.signature, readModel);
      checkConfigAgainstSignature(config, pool.signature, preprocessor, modelPath);
      const batchAxis = await decideBatchAxis(pool.signature, readModel);
      features = await FeatureLookup.open(config, version);
      const scheduler = schedulerFactory(pool, config, pool.signature, batchAxis);
      const loaded = new ModelVersion(
        config,
        version,
        modelPath,
        pool,
        scheduler,
        schema,
        preprocessor,
        postprocessor,
        hooks,
        batchAxis,
        features,
      );
      if (config.cache.enabled) {
        loaded.answerFingerprint = await answerFingerprint(config, modelPath);
      }
      // Built now so a shared cache's connection opens during warm-up, not on the first request.
      cache = openVersionCache(config, version, loaded.answerFingerprint);
      loaded.cache = cache;
      await loaded.warmUp();
      loaded.state = 'ready';
      return loaded;
    } catch (error) {
      await cache?.close();
      await features?.close();
      await pool.release();
      throw error;
    }
  }

  /**
   * Runs a zero batch through every instance so the first real request does not pay for lazy initialization.
   * With `warmup.runs: 0` one run on one instance still happens: a version whose first inference fails (an
   * impossible Reshape, an out-of-range Gather) is refused here instead of failing every request.
   */
  private async warmUp(): Promise<void> {
    const rows = this.batchable ? this.config.warmup.batchSize : 1;
    const rowShapeOf = (input: string) => this.preprocessor.builders.find((b) => b.spec.name === input)?.rowShape;
    const runs = Math.max(1, this.config.warmup.runs);
    const instances = this.config.warmup.runs > 0 ? this.pool.instances : this.pool.instances.slice(0, 1);
    for (let run = 0; run < runs; run++) {
      await Promise.all(
        instances.map((instance) => {
          const feeds = warmUpFeeds(this.signature, rows, rowShapeOf);
          return instance.run(feeds).catch((error: Error) => {
            throw new CaliperError(
              'CALIPER_MODEL_LOAD_FAILED',
              `${this.name} version ${this.version}: ONNX Runtime loads the model but its first inference fails (zero inputs ${describeFeeds(feeds)}): ${error.message}`,
            );
          });
        }),
      );
    }
  }

  /** Stops taking work, waits for what is queued or running, then frees the sessions. */
  async unload(): Promise<void> {
    this.state = 'unloading';
    await this.scheduler.drain();
    const cache = this.cache;
    this.cache = undefined;
    await cache?.close();
    await this.features?.close();
    await this.pool.release();
  }
}
