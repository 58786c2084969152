import { describeValue } from '../config/config-reader.ts';
import { invalidInput } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { InferenceOptions } from './admission.ts';
import type { Prediction } from './postprocess.ts';
import { runStages, stageContext } from './stage-list.ts';
import type { StageTimings } from './stage-timings.ts';

/** What a /predict request is admitted with (src/pipeline/admission.ts). */
export type PredictOptions = InferenceOptions;

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

/**
 * The /predict path: a JSON body (one object, or {"instances": [...]}) enters the stage list at validate and leaves
 * after postprocess with one answer per instance (src/pipeline/stage-list.ts lists the stages and their order).
 */
export function runPredict(
  version: ModelVersion,
  body: unknown,
  options: PredictOptions = {},
): Promise<PredictOutcome> {
  // Not async: a body refused here rejects the returned promise, and the answer is one reaction on the runner's.
  let raw: unknown[];
  let single: boolean;
  try {
    ({ raw, single } = requestRows(version, body));
  } catch (error) {
    return Promise.reject(error);
  }
  const ctx = stageContext(
    version,
    { rows: raw, prefixOf: single ? singlePrefix : instancePrefix, outputNames: version.postprocessor.outputNames },
    options,
  );
  return runStages(ctx, 'validate', 'postprocess').then(
    (done): PredictOutcome => ({
      predictions: done.predictions!,
      single,
      batchSize: done.batchSize,
      rows: done.raw.length,
      timings: done.timings,
    }),
  );
}
