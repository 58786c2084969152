import { canonicalRequestKey } from '../cache/version-cache.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { parseExactJson, stringifyExactJson } from '../runtime/exact-json.ts';
import type { TensorMap } from '../runtime/tensor.ts';
import type { InferenceResult } from '../scheduler/scheduler.ts';
import type { InferenceOptions } from './admission.ts';
import { markDegraded } from './feature-lookup.ts';
import type { Prediction } from './postprocess.ts';
import type { RequestRow } from './request-schema.ts';
import { runInference, runTensorsAsSent } from './scheduled-inference.ts';
import { PIPELINE_STAGES, type PipelineStage, type StageTimings } from './stage-timings.ts';
import { checkInputTensors, checkOutputNames } from './tensor-check.ts';

/**
 * A request's way through a served version, listed once, in order (as fastify lists its hooks):
 *
 *   validate → features → cache → preprocess → queue → inference → postprocess
 *
 *   validate     rows checked against model.yaml `inputs` (and the hook's preprocess), or input tensors against
 *                the model's signature
 *   features     per-entity features looked up and joined to each row (model.yaml `features`)
 *   cache        the answer looked up by the canonical rows, looked-up features included, so a cached answer never
 *                outlives a feature update; a hit answers at once and skips preprocess and everything after it
 *   preprocess   rows → input tensors (model.yaml `preprocess`)
 *   queue        the job handed to the version's scheduler (the one place it is reached, through
 *                scheduled-inference.ts; rows and built tensors by the model's row rules, v2/gRPC tensors as sent):
 *                waits for its batch
 *   inference    the batch's run on a model instance; this job's rows taken back along the proven batch axis
 *   postprocess  output tensors → answers (model.yaml `postprocess`, the hook's postprocess); the cache filled
 *
 * One runner (`runStages`) walks the list and times every stage (queue and inference as the scheduler measured
 * them); Server-Timing, statistics, metrics and the SLA monitor all read those timings. The protocols are adapters
 * that enter and leave the list at different stages:
 *
 *   /predict, caliper batch (row path)   rows in at validate, answers out after postprocess
 *   v2 REST (JSON, binary), gRPC         tensors in at validate, tensors out after inference (the row stages
 *                                        features, cache, preprocess and postprocess do not apply to tensors)
 *   caliper batch (columnar path)        tensors built from columns in at queue (one row per file row, so the
 *                                        model's row rules apply as for rows), out after inference
 *
 * A stage that does not apply to a request (no `features` section, no cache, tensors in) is skipped and absent
 * from its timings.
 */

/** One request on its way through the list: what came in, what each stage has produced so far. */
export interface StageContext {
  readonly version: ModelVersion;
  readonly options: InferenceOptions;
  /** performance.now() when the request entered the list. */
  readonly started: number;
  /** Milliseconds per stage passed through, and the total once the walk ends. */
  readonly timings: StageTimings;
  /** Tensors came in (v2, gRPC, columnar batch): the row stages do not apply. */
  readonly tensorsIn: boolean;
  /**
   * The queue stage applies the model's row rules (rows in, or tensors built one row per dim-0 entry: the columnar
   * batch path); false for tensors as sent over v2/gRPC, which go to the scheduler as one job whatever the model.
   */
  readonly rowRules: boolean;
  /** Rows in: the request's objects as sent (one per instance), checked by validate. */
  raw: readonly unknown[];
  /** How a row's fields are named in error messages (`instances[3].` for the fourth instance). */
  prefixOf: (row: number) => string;
  /**
   * Row-tolerant (caliper batch): a row a stage refuses is recorded here and dropped, and the others go on;
   * otherwise the first bad row fails the request.
   */
  rowErrors?: { index: number; reason: string }[];
  /** For each row still on its way, its index in `raw`. */
  rowIndex: number[];
  rows: RequestRow[];
  /** Per row, whether its features fell back to defaults (the store slow or down). */
  degraded?: boolean[];
  cacheKey?: string;
  /** The job's input tensors: as sent (tensors in) or built by preprocess. */
  inputs?: TensorMap;
  /** Rows of the job: dim 0 of its inputs (1 for tensors sent to a model without a batch axis). */
  rowCount: number;
  /** Outputs asked for; every output when undefined. */
  outputNames?: string[];
  /** The scheduler's answer, pending between queue and inference. */
  pending?: Promise<InferenceResult>;
  outputs?: TensorMap;
  predictions?: Prediction[];
  /** Rows in the batch that ran this job (0 when it did not run: a cache hit). */
  batchSize: number;
  /** Set by a stage that answered the request (a cache hit, no rows left): the walk ends there. */
  answered: boolean;
}

/** One stage of the list. */
export interface Stage {
  readonly name: PipelineStage;
  /** True when the stage does not apply to this request: it is skipped and not timed. */
  skips(ctx: StageContext): boolean;
  /** Does the stage's work on `ctx`. A stage that returns nothing ran synchronously. */
  run(ctx: StageContext): void | Promise<void>;
  /** `scheduler`: its time is what the scheduler measured (written by the inference stage), not wall time. */
  readonly timedBy: 'runner' | 'scheduler';
}

const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Row-tolerant runs: after `step` refused the whole set, runs it row by row, keeping the rows it accepts. */
async function keepRowsAccepted(ctx: StageContext, step: (row: RequestRow) => unknown): Promise<void> {
  const kept: RequestRow[] = [];
  const keptIndex: number[] = [];
  for (let k = 0; k < ctx.rows.length; k++) {
    try {
      await step(ctx.rows[k]!);
      kept.push(ctx.rows[k]!);
      keptIndex.push(ctx.rowIndex[k]!);
    } catch (error) {
      ctx.rowErrors!.push({ index: ctx.rowIndex[k]!, reason: reasonOf(error) });
    }
  }
  ctx.rows = kept;
  ctx.rowIndex = keptIndex;
  ctx.rowCount = kept.length;
  if (kept.length === 0) answerWithNothing(ctx);
}

function answerWithNothing(ctx: StageContext): void {
  ctx.predictions = [];
  ctx.answered = true;
}

const rowStage = (ctx: StageContext): boolean => ctx.tensorsIn;

const validate: Stage = {
  name: 'validate',
  timedBy: 'runner',
  skips: () => false,
  run(ctx) {
    const { version } = ctx;
    if (ctx.tensorsIn) {
      checkOutputNames(version, ctx.outputNames);
      const rows = checkInputTensors(version, ctx.inputs!);
      ctx.rowCount = version.batchable ? rows : 1;
      return;
    }
    const { schema, hooks } = version;
    for (let i = 0; i < ctx.raw.length; i++) {
      try {
        let row = schema.validate(ctx.raw[i], ctx.prefixOf(i));
        if (hooks?.preprocess) row = hooks.preprocess(row);
        ctx.rows.push(row);
        ctx.rowIndex.push(i);
      } catch (error) {
        if (!ctx.rowErrors) throw error;
        ctx.rowErrors.push({ index: i, reason: reasonOf(error) });
      }
    }
    ctx.rowCount = ctx.rows.length;
    if (ctx.rows.length === 0) answerWithNothing(ctx);
  },
};

const features: Stage = {
  name: 'features',
  timedBy: 'runner',
  skips: (ctx) => rowStage(ctx) || !ctx.version.features,
  async run(ctx) {
    const lookup = ctx.version.features!;
    try {
      ctx.degraded = await lookup.run(ctx.rows, ctx.prefixOf);
    } catch (error) {
      if (!ctx.rowErrors) throw error;
      // A row without its lookup key: find it, keep the rest (the lookup fills rows in place).
      await keepRowsAccepted(ctx, (row) => lookup.run([row], () => ''));
    }
  },
};

const cache: Stage = {
  name: 'cache',
  timedBy: 'runner',
  skips: (ctx) => rowStage(ctx) || !ctx.version.cache,
  run(ctx) {
    ctx.cacheKey = canonicalRequestKey(ctx.rows);
    const lookup = ctx.version.cache!.get(ctx.cacheKey);
    // A memory cache answers at once: no await (and no turn of the event loop) on the common path.
    if (lookup instanceof Promise) return lookup.then((cached) => answerFromCache(ctx, cached));
    answerFromCache(ctx, lookup);
  },
};

function answerFromCache(ctx: StageContext, cached: string | undefined): void {
  if (cached === undefined) return;
  ctx.predictions = markDegraded(parseExactJson(cached) as Prediction[], ctx.degraded);
  ctx.answered = true;
}

const preprocess: Stage = {
  name: 'preprocess',
  timedBy: 'runner',
  skips: rowStage,
  run(ctx) {
    const { preprocessor } = ctx.version;
    try {
      ctx.inputs = preprocessor.run(ctx.rows, ctx.prefixOf);
    } catch (error) {
      if (!ctx.rowErrors) throw error;
      // One row the transforms refuse (e.g. an unknown category without an enum): find it, keep the rest.
      return keepRowsAccepted(ctx, (row) => preprocessor.run([row], () => '')).then(() => {
        if (!ctx.answered) ctx.inputs = preprocessor.run(ctx.rows, ctx.prefixOf);
      });
    }
  },
};

const queue: Stage = {
  name: 'queue',
  timedBy: 'scheduler',
  skips: () => false,
  run(ctx) {
    const submit = ctx.rowRules ? runInference : runTensorsAsSent;
    ctx.pending = submit(ctx.version, ctx.inputs!, ctx.rowCount, ctx.options, ctx.outputNames);
  },
};

const inference: Stage = {
  name: 'inference',
  timedBy: 'scheduler',
  skips: () => false,
  run(ctx) {
    // The scheduler's own promise, one reaction on it: no async wrapper around the wait.
    return ctx.pending!.then((result) => {
      ctx.timings.queue = result.queueMs;
      ctx.timings.inference = result.inferenceMs;
      ctx.outputs = result.outputs;
      ctx.batchSize = result.batchSize;
    });
  },
};

const postprocess: Stage = {
  name: 'postprocess',
  timedBy: 'runner',
  skips: rowStage,
  run(ctx) {
    const { postprocessor, hooks, cache } = ctx.version;
    const outputs = ctx.outputs!;
    let predictions = postprocessor.run(outputs, ctx.rowCount);
    if (hooks?.postprocess)
      predictions = predictions.map((p, row) => hooks.postprocess!(p, { outputs, row, request: ctx.rows[row]! }));
    if (cache && ctx.cacheKey !== undefined) void cache.set(ctx.cacheKey, stringifyExactJson(predictions));
    ctx.predictions = markDegraded(predictions, ctx.degraded);
  },
};

/** The stages, in order. */
export const STAGES: readonly Stage[] = [validate, features, cache, preprocess, queue, inference, postprocess];

/** Where a request came in: rows (objects as sent) or tensors. */
export type StageInput =
  | {
      rows: readonly unknown[];
      prefixOf?: (row: number) => string;
      /** Record bad rows and go on with the others (caliper batch). */
      tolerant?: boolean;
      outputNames?: string[];
    }
  | {
      tensors: TensorMap;
      rows?: number;
      outputNames?: string[];
      /** The tensors were built one row per dim-0 entry (the columnar batch path): the row rules apply at queue. */
      rowRules?: boolean;
    };

/** A fresh context for one request entering `version`'s list. */
export function stageContext(version: ModelVersion, input: StageInput, options: InferenceOptions = {}): StageContext {
  // One object literal with every field, absent ones undefined: every request's context has the same shape, and no
  // conditional spread builds throw-away objects on the hot path.
  const tensorsIn = 'tensors' in input;
  return {
    version,
    options,
    started: performance.now(),
    timings: { total: 0 },
    tensorsIn,
    rowRules: !tensorsIn || input.rowRules === true,
    raw: tensorsIn ? [] : input.rows,
    prefixOf: (!tensorsIn && input.prefixOf) || noPrefix,
    rowErrors: !tensorsIn && input.tolerant ? [] : undefined,
    rowIndex: [],
    rows: [],
    degraded: undefined,
    cacheKey: undefined,
    inputs: tensorsIn ? input.tensors : undefined,
    rowCount: tensorsIn ? (input.rows ?? 1) : input.rows.length,
    outputNames: input.outputNames,
    pending: undefined,
    outputs: undefined,
    predictions: undefined,
    batchSize: 0,
    answered: false,
  };
}

const noPrefix = (): string => '';

/**
 * The runner: walks the list from stage `from` through stage `until` (both included), skipping the stages that do not
 * apply, timing each one it runs, and stopping early when a stage answered. Sets `timings.total` at the end.
 * Rejects with the first error a stage throws or rejects with.
 */
export function runStages(
  ctx: StageContext,
  from: PipelineStage = 'validate',
  until: PipelineStage = 'postprocess',
): Promise<StageContext> {
  try {
    const walked = walk(ctx, PIPELINE_STAGES.indexOf(from), until, ctx.started);
    return walked instanceof Promise ? walked : Promise.resolve(walked);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Walks synchronously while the stages answer synchronously; at a stage that returns a promise the walk goes on in
 * that promise's reaction (one per asynchronous stage, instead of an await per stage and per layer).
 */
function walk(
  ctx: StageContext,
  start: number,
  until: PipelineStage,
  since: number,
): StageContext | Promise<StageContext> {
  let last = since;
  for (let i = start; i < STAGES.length; i++) {
    const stage = STAGES[i]!;
    if (!stage.skips(ctx)) {
      const running = stage.run(ctx);
      if (running) {
        const from = last;
        return running.then(() => {
          const now = performance.now();
          if (stage.timedBy === 'runner') ctx.timings[stage.name] = now - from;
          return ctx.answered || stage.name === until ? finish(ctx) : walk(ctx, i + 1, until, now);
        });
      }
      const now = performance.now();
      if (stage.timedBy === 'runner') ctx.timings[stage.name] = now - last;
      last = now;
    }
    if (ctx.answered || stage.name === until) break;
  }
  return finish(ctx);
}

function finish(ctx: StageContext): StageContext {
  ctx.timings.total = performance.now() - ctx.started;
  return ctx;
}
