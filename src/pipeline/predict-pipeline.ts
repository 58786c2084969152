import { canonicalRequestKey } from '../cache/version-cache.ts';
import { parseExactJson, stringifyExactJson } from '../runtime/exact-json.ts';
import { describeValue } from '../config/config-reader.ts';
import { CaliperError, invalidInput } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { misalignedOutputError } from '../runtime/batch-axis.ts';
import { fixedRowCount } from '../runtime/model-signature.ts';
import { concatRows, sliceRows, type TensorMap } from '../runtime/tensor.ts';
import type { InferenceJob, InferenceResult } from '../scheduler/scheduler.ts';
import { markDegraded } from './feature-lookup.ts';
import type { Prediction } from './postprocess.ts';
import type { RequestRow } from './request-schema.ts';
import type { StageTimings } from './stage-timings.ts';

export interface PredictOptions {
  /** performance.now() time by which the answer is due. */
  deadline?: number;
  priority?: number;
  /** True once the client has left (socket closed, call cancelled): queued work for it is dropped. */
  clientGone?: () => boolean;
}

export interface PredictOutcome {
  predictions: Prediction[];
  /** The request was one object rather than {"instances": [...]}. */
  single: boolean;
  timings: StageTimings;
  batchSize: number;
  /** Instances the request carried. */
  rows: number;
}

const singlePrefix = (): string => '';
const instancePrefix = (i: number): string => `instances[${i}].`;

/** Splits a /predict body into rows: one object, or {"instances": [...]}. */
function requestRows(version: ModelVersion, body: unknown): { raw: unknown[]; single: boolean } {
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'instances' in body) {
    const { instances, ...rest } = body as { instances: unknown };
    const extra = Object.keys(rest).filter((k) => k !== 'parameters');
    if (extra.length > 0)
      throw invalidInput(`${extra[0]}: unknown field next to instances (expected only instances and parameters)`);
    if (!Array.isArray(instances) || instances.length === 0)
      throw invalidInput(`instances: expected a non-empty array of objects, got ${describeValue(instances)}`);
    const max = version.config.maxInstancesPerRequest;
    if (instances.length > max)
      throw invalidInput(`instances: expected at most ${max} instances per request, got ${instances.length}`);
    return { raw: instances, single: false };
  }
  return { raw: [body], single: true };
}

function inferenceJob(
  inputs: TensorMap,
  rows: number,
  options: PredictOptions,
  outputNames: string[] | undefined,
): InferenceJob {
  return {
    inputs,
    rows,
    deadline: options.deadline,
    priority: options.priority,
    outputNames,
    clientGone: options.clientGone,
  };
}

/** Runs a job; a model without a batch dimension gets one job per row. */
export function runInference(
  version: ModelVersion,
  inputs: TensorMap,
  rows: number,
  options: PredictOptions,
  outputNames?: string[],
): Promise<InferenceResult> {
  // Not async: the common case hands back the scheduler's own promise without another layer around it.
  if (version.batchable) {
    const submitted = version.scheduler.submit(inferenceJob(inputs, rows, options, outputNames));
    return rows === 1 ? submitted : submitted.then((result) => alignedResult(version, result, rows));
  }
  const fixed = fixedRowCount(version.signature);
  if (fixed !== undefined) {
    if (rows !== fixed) {
      return Promise.reject(
        invalidInput(
          `instances: model ${version.name} takes exactly ${fixed} rows per run (its inputs' first dimension is fixed at ${fixed}, not a batch axis); send ${fixed} instances, got ${rows}`,
        ),
      );
    }
    return version.scheduler.submit(inferenceJob(inputs, rows, options, outputNames));
  }
  if (rows === 1) return version.scheduler.submit(inferenceJob(inputs, rows, options, outputNames));
  return runRowByRow(version, inputs, rows, options, outputNames);
}

/** Rows of a multi-row job go back to their instances (or file rows) only when every output has one row per input row. */
function alignedResult(version: ModelVersion, result: InferenceResult, rows: number): InferenceResult {
  const misaligned = misalignedOutputError(version.name, result.outputs, rows);
  if (misaligned) throw misaligned;
  return result;
}

async function runRowByRow(
  version: ModelVersion,
  inputs: TensorMap,
  rows: number,
  options: PredictOptions,
  outputNames: string[] | undefined,
): Promise<InferenceResult> {
  const parts = await Promise.all(
    Array.from({ length: rows }, (_, r) => {
      const feeds: TensorMap = {};
      for (const [name, tensor] of Object.entries(inputs)) feeds[name] = sliceRows(tensor, r, 1);
      return version.scheduler.submit(inferenceJob(feeds, 1, options, outputNames));
    }),
  );
  const outputs: TensorMap = {};
  for (const name of Object.keys(parts[0]!.outputs)) {
    const perRow = parts.map((p) => p.outputs[name]!);
    // Stacking is only meaningful when each one-row run answered one row; anything else would mix rows up.
    const odd = perRow.find((t) => t.dims[0] !== 1);
    if (odd) {
      throw new CaliperError(
        'CALIPER_OUTPUT_NOT_ALIGNED',
        `model ${version.name}: output "${name}" has shape [${odd.dims.join(', ')}] for a one-row input, so ${rows} instances cannot be answered row by row (send them one per request, or use /v2/models/${version.name}/infer)`,
      );
    }
    outputs[name] = concatRows(perRow);
  }
  return {
    outputs,
    queueMs: Math.max(...parts.map((p) => p.queueMs)),
    inferenceMs: Math.max(...parts.map((p) => p.inferenceMs)),
    batchSize: 1,
  };
}

/** route → validate → features → preprocess → cache → queue → inference → postprocess, timed per stage. */
export async function runPredict(
  version: ModelVersion,
  body: unknown,
  options: PredictOptions = {},
): Promise<PredictOutcome> {
  const started = performance.now();
  const { raw, single } = requestRows(version, body);
  const prefixOf = single ? singlePrefix : instancePrefix;
  let rows: RequestRow[] = single
    ? [version.schema.validate(raw[0])]
    : raw.map((r, i) => version.schema.validate(r, prefixOf(i)));
  const hooks = version.hooks;
  if (hooks?.preprocess) rows = rows.map((r) => hooks.preprocess!(r));
  const validated = performance.now();

  const degraded = version.features ? await version.features.run(rows, prefixOf) : undefined;
  const featured = version.features ? performance.now() : validated;

  const inputs = version.preprocessor.run(rows, prefixOf);
  const preprocessed = performance.now();

  const cache = version.cache;
  let cacheKey: string | undefined;
  let cacheMs: number | undefined;
  if (cache) {
    cacheKey = canonicalRequestKey(rows);
    const lookup = cache.get(cacheKey);
    const cached = lookup instanceof Promise ? await lookup : lookup;
    const looked = performance.now();
    cacheMs = looked - preprocessed;
    if (cached !== undefined) {
      const timings: StageTimings = { validate: validated - started, total: looked - started };
      if (version.features) timings.features = featured - validated;
      timings.preprocess = preprocessed - featured;
      timings.cache = cacheMs;
      return {
        predictions: markDegraded(parseExactJson(cached) as Prediction[], degraded),
        single,
        batchSize: 0,
        rows: rows.length,
        timings,
      };
    }
  }

  const result = await runInference(version, inputs, rows.length, options, version.postprocessor.outputNames);
  const inferred = performance.now();

  let predictions = version.postprocessor.run(result.outputs, rows.length);
  if (hooks?.postprocess)
    predictions = predictions.map((p, row) =>
      hooks.postprocess!(p, { outputs: result.outputs, row, request: rows[row]! }),
    );
  if (cache) void cache.set(cacheKey!, stringifyExactJson(predictions));
  const finished = performance.now();

  const timings: StageTimings = { validate: validated - started, total: finished - started };
  if (version.features) timings.features = featured - validated;
  timings.preprocess = preprocessed - featured;
  if (cacheMs !== undefined) timings.cache = cacheMs;
  timings.queue = result.queueMs;
  timings.inference = result.inferenceMs;
  timings.postprocess = finished - inferred;
  return {
    predictions: markDegraded(predictions, degraded),
    single,
    batchSize: result.batchSize,
    rows: rows.length,
    timings,
  };
}
