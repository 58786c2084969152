import { join } from 'node:path';
import type { ModelConfig } from '../config/model-config.ts';
import type { FeedSet } from '../optimize/datasets/feed-set.ts';
import type { ModelSource } from '../optimize/model-source.ts';
import { QuantizeError } from '../optimize/quantize/quantize-error.ts';
import type { QuantizeMode } from '../optimize/quantize/quantizer.ts';
import type { ModelChange } from './model-change.ts';
import type { ProfileStage, StageProfile } from './stage-profile.ts';

/** What a remedy is tried against: the model as changed so far, its latest profile and the user's guards. */
export interface RemedyContext {
  source: ModelSource;
  /** The served version's config with the kept changes applied. */
  config: ModelConfig;
  change: ModelChange;
  profile: StageProfile;
  budgetMs: number;
  /** Where optimized model files are written. */
  workDir: string;
  /** Labelled evaluation data for the accuracy guard (request rows through the model's pipeline, or tensors). */
  evalData?: FeedSet | string;
  /** Calibration samples for static INT8 (the evaluation data without labels). */
  calibration?: FeedSet | string;
  /** The accuracy guard: most accuracy points (or % more MAE) an optimized model may lose. */
  maxDrop: number;
  /** A Redis next to the server the feature values may be copied to (--feature-redis). */
  featureRedis?: string;
  cores: number;
  /** The request sample's repeat share: the hit rate a cache holding every answer would reach on it (0..1). */
  repeatShare: number;
  distinctRequests: number;
}

/** What a remedy would change, with the evidence gathered before measuring it; or why it is not tried. */
export type RemedyPlan =
  | {
      kind: 'try';
      change: ModelChange;
      detail: string;
      /** The accuracy guard's figures for an optimized model file. */
      guard?: { accuracyBefore?: number; accuracyAfter?: number; maeBefore?: number; maeAfter?: number; note: string };
    }
  | { kind: 'skip'; reason: string }
  | { kind: 'refuse'; reason: string; guard?: { note: string } };

/** What the measured candidate showed, for remedies with a guard on served behaviour (degraded answers). */
export interface TrialEvidence {
  /** Share of feature lookups answered with defaults because the store was slow (0..1), when measured. */
  degradedShare?: number;
}

export interface Remedy {
  id: string;
  /** The stage it shortens (the one its trial is reported under). */
  stage: ProfileStage;
  /** Every stage it shortens, when more than `stage`: it is a remedy for each (default [stage]). */
  stages?: readonly ProfileStage[];
  title: string;
  /** Expected share of the stage's time it removes (0..1): remedies for a stage are tried in this order. */
  expectedGain(context: RemedyContext): number;
  plan(context: RemedyContext): Promise<RemedyPlan>;
  /** A reason to drop the remedy after measuring it, despite a faster p99. */
  refuseAfter?(evidence: TrialEvidence, context: RemedyContext): string | undefined;
  /**
   * A remedy for the cold path (a fresh server's first answers), not for a stage of the warm p99: tried once the
   * warm search is over, when the cold figure misses the budget, and judged on fresh servers' cold figures.
   */
  cold?: true;
  /**
   * A capacity remedy (instances, threads) whose worth depends on the work each request brings: tried once more when
   * dynamic batching is on, since one model run then answers several requests (see trialKey).
   */
  retriedWithBatching?: true;
}

/** Whether the model as changed so far batches requests: batching on with room for more than one request. */
export const batchingOn = (config: ModelConfig): boolean => config.batching.enabled && config.batching.maxBatchSize > 1;

/**
 * What the doctor remembers a remedy as tried under: its id, or for a remedy retriedWithBatching on a model that
 * batches, `<id>+batching` (a worker instance that lost against one request per run may win against batches).
 */
export function trialKey(remedy: Remedy, config: ModelConfig): string {
  return remedy.retriedWithBatching && batchingOn(config) ? `${remedy.id}+batching` : remedy.id;
}

/** At most this share of answers may fall back to default features when a remedy shortens the store's timeout. */
export const MAX_DEGRADED_SHARE = 0.01;

const modelFileOf = (context: RemedyContext): string => context.change.modelFile ?? context.source.modelPath;

/** An optimized model file from `caliper quantize`'s library call, judged by its guard on the evaluation data. */
function quantizeRemedy(mode: QuantizeMode, title: string, gain: number): Remedy {
  return {
    id: mode === 'fp16' ? 'fp16' : `int8-${mode}`,
    stage: 'inference',
    title,
    expectedGain: () => gain,
    async plan(context) {
      if (context.evalData === undefined)
        return {
          kind: 'skip',
          reason: 'no evaluation data to guard accuracy with (give --eval DATA --label COLUMN)',
        };
      if (mode === 'static' && context.calibration === undefined)
        return { kind: 'skip', reason: 'no calibration data' };
      const output = join(context.workDir, `model.${mode === 'fp16' ? 'fp16' : `int8-${mode}`}.onnx`);
      const { quantize } = await import('../optimize/quantize/quantizer.ts');
      try {
        const { report } = await quantize(modelFileOf(context), {
          mode,
          output,
          eval: context.evalData,
          maxDrop: context.maxDrop,
          ...(mode === 'static' ? { calibration: context.calibration!, calibrationSamples: 128 } : {}),
          // Served latency is what the doctor measures; the in-process batch-1/64 timing is left out.
          latencyBatchSizes: [],
        });
        const guard = {
          ...(report.accuracy ? { accuracyBefore: report.accuracy.before, accuracyAfter: report.accuracy.after } : {}),
          ...(report.regression
            ? { maeBefore: report.regression.before.mae, maeAfter: report.regression.after.mae }
            : {}),
          note: report.guard.passed
            ? `guard passed on ${report.accuracy?.samples ?? report.regression?.samples ?? report.outputDifference.samples} evaluation samples (max drop ${context.maxDrop})`
            : report.guard.reasons.join('; '),
        };
        if (!report.guard.written) return { kind: 'refuse', reason: `accuracy guard: ${guard.note}`, guard };
        if (!report.accuracy && !report.regression)
          return {
            kind: 'refuse',
            reason: `accuracy not checked: the evaluation data has no labels (give --label COLUMN)`,
            guard,
          };
        return {
          kind: 'try',
          change: { edits: [], modelFile: output },
          detail: `${report.convertedNodes} nodes converted, ${(report.size.ratio * 100).toFixed(0)}% of the size`,
          guard,
        };
      } catch (error) {
        if (error instanceof QuantizeError) return { kind: 'skip', reason: error.message };
        throw error;
      }
    },
  };
}

const threadsRemedy: Remedy = {
  id: 'intra-op-threads',
  stage: 'inference',
  title: 'more intra-op threads per instance',
  retriedWithBatching: true,
  expectedGain: (c) => (c.cores > 1 ? 0.3 : 0),
  async plan(context) {
    const threads = Math.min(context.cores, 4);
    if (threads <= context.config.instances.intraOpThreads)
      return {
        kind: 'skip',
        reason: `already ${context.config.instances.intraOpThreads} threads on ${context.cores} cores`,
      };
    return {
      kind: 'try',
      change: { edits: [{ path: ['instances', 'intra_op_threads'], value: threads }] },
      detail: `instances.intra_op_threads ${context.config.instances.intraOpThreads} → ${threads}`,
    };
  },
};

function instancesRemedy(stage: ProfileStage, gain: number): Remedy {
  return {
    id: `instances-${stage}`,
    stage,
    title: 'more model instances (worker threads)',
    retriedWithBatching: true,
    expectedGain: (c) => (c.cores > 1 ? gain : 0),
    async plan(context) {
      const { instances } = context.config;
      const count = Math.min(context.cores, 4);
      if (count <= instances.count)
        return { kind: 'skip', reason: `already ${instances.count} instances on ${context.cores} cores` };
      return {
        kind: 'try',
        change: {
          edits: [
            { path: ['instances', 'count'], value: count },
            { path: ['instances', 'kind'], value: 'worker' },
            { path: ['instances', 'intra_op_threads'], value: 1 },
          ],
        },
        detail: `instances ${instances.count} ${instances.kind} → ${count} worker × 1 thread`,
      };
    },
  };
}

/**
 * Whether the server fell behind the offered load during a profile: open loop, it answered under FELL_BEHIND_SHARE of
 * the requests/s offered, so a backlog grew or was still draining (a closed loop never outruns its server).
 */
export function fellBehind(profile: StageProfile): boolean {
  return profile.load.mode === 'rate' && profile.throughput < profile.load.rate * FELL_BEHIND_SHARE;
}
export const FELL_BEHIND_SHARE = 0.97;

function batchingRemedy(stage: ProfileStage, gain: number | ((context: RemedyContext) => number)): Remedy {
  return {
    id: `batching-${stage}`,
    stage,
    title: 'dynamic batching',
    expectedGain: typeof gain === 'number' ? () => gain : gain,
    async plan(context) {
      const { batching } = context.config;
      if (!batching.enabled || batching.maxBatchSize <= 1)
        return {
          kind: 'try',
          change: {
            edits: [
              { path: ['batching', 'enabled'], value: true },
              { path: ['batching', 'max_batch_size'], value: 32 },
              { path: ['batching', 'max_queue_delay_us'], value: 200 },
            ],
          },
          detail: 'batching on: max_batch_size 32, max_queue_delay_us 200',
        };
      const delay = batching.maxQueueDelayUs === 'auto' ? undefined : batching.maxQueueDelayUs;
      if (delay !== undefined && delay > 100)
        return {
          kind: 'try',
          change: { edits: [{ path: ['batching', 'max_queue_delay_us'], value: 100 }] },
          detail: `batching.max_queue_delay_us ${delay} → 100`,
        };
      return { kind: 'skip', reason: 'batching is on with a short delay already' };
    },
  };
}

/** Powers of two from 2 up to `limit` (inclusive). */
const powersOfTwoUpTo = (limit: number): number[] => {
  const sizes: number[] = [];
  for (let size = 2; size <= limit; size *= 2) sizes.push(size);
  return sizes;
};

/**
 * Preferred batch sizes, as Triton's: a batch leaves as soon as it holds one of them instead of waiting out the queue
 * delay. The sizes are the powers of two up to the mean batch the batcher formed under this load (measured), so
 * the batches it already forms leave without the wait.
 */
function preferredSizesRemedy(id: string, stage: ProfileStage, gain: number): Remedy {
  return {
    id,
    stage,
    title: 'preferred batch sizes (a batch leaves without waiting out the delay)',
    expectedGain: (c) => (batchingOn(c.config) ? gain : 0),
    async plan(context) {
      const { batching } = context.config;
      if (batching.preferredBatchSizes.length > 0)
        return {
          kind: 'skip',
          reason: `preferred_batch_sizes [${batching.preferredBatchSizes.join(', ')}] set already`,
        };
      const mean = context.profile.meanBatchSize;
      if (mean === null || mean < 2)
        return {
          kind: 'skip',
          reason: `the batcher forms batches of ${mean === null ? 'unknown size' : mean.toFixed(2)} under this load: no size to prefer`,
        };
      const sizes = powersOfTwoUpTo(Math.min(batching.maxBatchSize, 2 ** Math.floor(Math.log2(mean))));
      return {
        kind: 'try',
        change: { edits: [{ path: ['batching', 'preferred_batch_sizes'], value: sizes }] },
        detail: `batching.preferred_batch_sizes [${sizes.join(', ')}] (mean batch ${mean.toFixed(2)} measured)`,
      };
    },
  };
}

/** The longest batching delay the doctor tries: this share of the p99 budget. */
export const MAX_DELAY_BUDGET_SHARE = 0.1;

/**
 * A longer batching delay, for time outside the stages once batching is on: a batch waits longer for company, so one
 * model run answers more requests and the event loop does less work per request, at the price of the wait, which
 * stays under MAX_DELAY_BUDGET_SHARE of the budget. The delay grows fourfold, to at most that share.
 */
const longerDelayRemedy: Remedy = {
  id: 'batching-delay-longer',
  stage: 'network',
  title: 'a longer batching delay (larger batches, fewer model runs)',
  expectedGain: (c) => (batchingOn(c.config) ? 0.3 : 0),
  async plan(context) {
    const { maxQueueDelayUs } = context.config.batching;
    if (maxQueueDelayUs === 'auto')
      return { kind: 'skip', reason: 'batching.max_queue_delay_us is auto: the scheduler tunes it to the SLA' };
    const ceiling = Math.floor(context.budgetMs * 1000 * MAX_DELAY_BUDGET_SHARE);
    const longer = Math.min(ceiling, Math.max(maxQueueDelayUs * 4, 100));
    if (longer <= maxQueueDelayUs)
      return {
        kind: 'skip',
        reason: `batching.max_queue_delay_us ${maxQueueDelayUs} is ${MAX_DELAY_BUDGET_SHARE * 100}% of the budget or more already`,
      };
    return {
      kind: 'try',
      change: { edits: [{ path: ['batching', 'max_queue_delay_us'], value: longer }] },
      detail: `batching.max_queue_delay_us ${maxQueueDelayUs} → ${longer} (mean batch ${context.profile.meanBatchSize?.toFixed(2) ?? 'unknown'} measured)`,
    };
  },
};

/**
 * Batched feature lookups: the store fetches a request's rows in one round trip and groups concurrent requests'
 * lookups. Caliper's Redis store does both already (one pipeline per request, auto-pipelining across requests), and
 * the in-process store has no round trip, so this entry says so in the report rather than changing anything.
 */
const batchedLookupsRemedy: Remedy = {
  id: 'features-batched-lookups',
  stage: 'features',
  title: 'batched feature lookups (one round trip for many keys)',
  expectedGain: () => 0.3,
  async plan(context) {
    const store = context.config.features?.store;
    if (!store) return { kind: 'skip', reason: 'the model looks up no features' };
    return {
      kind: 'skip',
      reason:
        store.kind === 'redis'
          ? "the Redis store already sends a request's lookups as one pipeline and concurrent requests' lookups together (auto-pipelining): the time is the store's round trip"
          : 'the in-process store has no round trip to batch',
    };
  },
};

/**
 * Warm-up at the sizes served: each instance runs the model more times at start, at the largest batch the batcher
 * forms, so the first requests do not pay for ONNX Runtime's first runs at a new shape (allocations, kernel choice).
 */
const warmupRemedy: Remedy = {
  id: 'warmup',
  stage: 'inference',
  title: 'warm-up runs at the batch size served',
  expectedGain: () => 0.5,
  cold: true,
  async plan(context) {
    const { warmup, batching } = context.config;
    const batchSize = batching.enabled ? batching.maxBatchSize : 1;
    const runs = Math.max(5, warmup.runs * 2);
    if (warmup.runs >= 5 && warmup.batchSize >= batchSize)
      return {
        kind: 'skip',
        reason: `warm-up runs ${warmup.runs} times at batch ${warmup.batchSize} already`,
      };
    return {
      kind: 'try',
      change: {
        edits: [
          { path: ['warmup', 'runs'], value: runs },
          { path: ['warmup', 'batch_size'], value: batchSize },
        ],
      },
      detail: `warmup.runs ${warmup.runs} → ${runs}, warmup.batch_size ${warmup.batchSize} → ${batchSize}`,
    };
  },
};

/**
 * An in-thread instance runs the model on the server's event loop (onnxruntime-node's run blocks it): requests that
 * arrive meanwhile wait before the pipeline starts timing them, so their wait shows as time outside the server's
 * stages (network). A worker-thread instance frees the event loop.
 */
const workerInstanceRemedy: Remedy = {
  id: 'worker-instance',
  stage: 'network',
  title: 'the model on a worker thread, off the event loop',
  retriedWithBatching: true,
  expectedGain: (c) => (c.config.instances.kind === 'in_thread' ? 0.5 : 0),
  async plan(context) {
    if (context.config.instances.kind !== 'in_thread')
      return { kind: 'skip', reason: 'the instances run on worker threads already' };
    return {
      kind: 'try',
      change: { edits: [{ path: ['instances', 'kind'], value: 'worker' }] },
      detail: `instances.kind in_thread → worker (inference took ${(context.profile.meanMs.inference ?? 0).toFixed(2)} ms of the event loop per request)`,
    };
  },
};

const featureRedisRemedy: Remedy = {
  id: 'features-redis',
  stage: 'features',
  title: 'features from a Redis next to the server instead of the slow source',
  expectedGain: (c) => (c.featureRedis ? 0.9 : 0.5),
  async plan(context) {
    const features = context.config.features;
    if (!features) return { kind: 'skip', reason: 'the model looks up no features' };
    if (!context.featureRedis)
      return { kind: 'skip', reason: 'give --feature-redis redis://HOST:PORT (a Redis next to the server) to try it' };
    if (features.store.kind === 'redis' && features.store.url === context.featureRedis)
      return { kind: 'skip', reason: `the features already come from ${context.featureRedis}` };
    const { copyFeatures } = await import('./feature-copy.ts');
    const copied = await copyFeatures(context.config, context.featureRedis);
    return {
      kind: 'try',
      change: {
        edits: [
          { path: ['features', 'store'], value: 'redis' },
          { path: ['features', 'url'], value: context.featureRedis },
          { path: ['features', 'source'], value: undefined },
        ],
      },
      detail: `${copied} entities copied from ${features.store.kind === 'redis' ? features.store.url : features.store.source} to ${context.featureRedis}`,
    };
  },
};

const featureTimeoutRemedy: Remedy = {
  id: 'features-timeout',
  stage: 'features',
  title: 'a shorter feature-store timeout (defaults past it)',
  expectedGain: () => 0.6,
  async plan(context) {
    const features = context.config.features;
    if (!features) return { kind: 'skip', reason: 'the model looks up no features' };
    const tail = context.profile.tailMs;
    const rest = Object.entries(tail).reduce((sum, [stage, ms]) => (stage === 'features' ? sum : sum + (ms ?? 0)), 0);
    // What the budget leaves the lookup once the other stages of the tail are paid, with a 20% margin.
    const timeout = Math.max(1, Math.floor((context.budgetMs - rest) * 0.8));
    if (timeout >= features.timeoutMs)
      return {
        kind: 'skip',
        reason: `the timeout (${features.timeoutMs} ms) is already within what the budget leaves`,
      };
    return {
      kind: 'try',
      change: { edits: [{ path: ['features', 'timeout_ms'], value: timeout }] },
      detail: `features.timeout_ms ${features.timeoutMs} → ${timeout}`,
    };
  },
  refuseAfter(evidence) {
    if (evidence.degradedShare !== undefined && evidence.degradedShare > MAX_DEGRADED_SHARE)
      return `${(evidence.degradedShare * 100).toFixed(1)}% of lookups fell back to default features (at most ${MAX_DEGRADED_SHARE * 100}%): the timeout hides the slow store instead of fixing it`;
    return undefined;
  },
};

/**
 * The response cache: a repeated request is answered at the cache stage, so it skips every stage after it — the
 * preprocess columns, the queue, inference and postprocess (with a postprocess hook).
 */
const responseCacheRemedy: Remedy = {
  id: 'response-cache',
  stage: 'inference',
  stages: ['preprocess', 'queue', 'inference', 'postprocess'],
  title: 'the response cache for repeated requests',
  expectedGain: (c) => c.repeatShare,
  async plan(context) {
    if (context.config.cache.enabled) return { kind: 'skip', reason: 'the response cache is on already' };
    if (context.repeatShare < 0.05)
      return {
        kind: 'skip',
        reason: `only ${(context.repeatShare * 100).toFixed(1)}% of the request sample repeats: a cache would rarely answer`,
      };
    const entries = Math.max(1000, context.distinctRequests * 2);
    return {
      kind: 'try',
      change: {
        edits: [
          { path: ['cache', 'enabled'], value: true },
          { path: ['cache', 'max_entries'], value: entries },
        ],
      },
      detail: `cache on (max_entries ${entries}); estimated hit rate ${(context.repeatShare * 100).toFixed(0)}% from the request sample`,
    };
  },
};

/** Every remedy, grouped by the stage it shortens; `remediesFor` orders them by expected gain. */
export const REMEDIES: readonly Remedy[] = [
  quantizeRemedy('static', 'INT8 static quantization (calibrated)', 0.6),
  quantizeRemedy('dynamic', 'INT8 dynamic quantization', 0.5),
  quantizeRemedy('fp16', 'FP16 conversion', 0.1),
  threadsRemedy,
  instancesRemedy('inference', 0.25),
  batchingRemedy('inference', 0.2),
  responseCacheRemedy,
  batchingRemedy('queue', 0.6),
  instancesRemedy('queue', 0.5),
  preferredSizesRemedy('preferred-batch-sizes', 'queue', 0.4),
  // Time outside the server's stages is requests waiting for the event loop (or a connection) when the server cannot
  // keep up: the remedies that raise its capacity. Batching first when it fell behind the offered rate (one model run
  // answers many requests, on any instance kind); otherwise the worker instance first (it frees the event loop).
  batchingRemedy('network', (c) => (batchingOn(c.config) ? 0 : fellBehind(c.profile) ? 0.6 : 0.3)),
  instancesRemedy('network', 0.25),
  // Once batching is on: larger batches, or batches that leave as soon as they hold a preferred size.
  longerDelayRemedy,
  preferredSizesRemedy('preferred-batch-sizes-network', 'network', 0.2),
  featureRedisRemedy,
  featureTimeoutRemedy,
  batchedLookupsRemedy,
  workerInstanceRemedy,
  warmupRemedy,
];

/** Advice for stages no remedy here shortens. */
export const STAGE_ADVICE: Partial<Record<ProfileStage, string>> = {
  network:
    "the time is outside the server's stages (network, HTTP, or requests waiting for the event loop): send binary tensors (v2 binary extension) or gRPC, keep connections alive, move the client closer, or give the machine more cores",
  validate: 'request validation is slow: send fewer, smaller fields per request',
  preprocess: 'preprocess is slow: move custom hook work into the model or precompute it as features',
  postprocess: 'postprocess is slow: simplify the hook or the outputs returned',
  cache: 'the cache lookup is slow: a Redis cache far from the server costs a round trip; use the in-process cache',
};

/**
 * The remedies for a stage of the warm p99 in order of expected gain (largest first); those expected to gain nothing
 * and the cold-path ones are left out.
 */
export function remediesFor(stage: ProfileStage, context: RemedyContext): Remedy[] {
  return REMEDIES.filter((r) => (r.stages ?? [r.stage]).includes(stage) && !r.cold && r.expectedGain(context) > 0).sort(
    (a, b) => b.expectedGain(context) - a.expectedGain(context),
  );
}
