import type { ModelVersion } from '../lifecycle/model-version.ts';
import type { TensorMap } from '../runtime/tensor.ts';
import type { InferenceOptions } from './admission.ts';
import { runStages, stageContext } from './stage-list.ts';
import type { StageTimings } from './stage-timings.ts';

export { checkInputTensors } from './tensor-check.ts';

export interface TensorInferOutcome {
  outputs: TensorMap;
  timings: StageTimings;
  batchSize: number;
  /** Rows the request carried (its batch dimension; 1 for a model without one). */
  rows: number;
}

/**
 * The Open Inference Protocol path (v2 REST JSON and binary, gRPC): raw tensors enter the stage list at validate
 * and leave after inference as raw tensors; the row stages (features, cache, preprocess, postprocess) do not apply.
 */
export async function runTensorInfer(
  version: ModelVersion,
  inputs: TensorMap,
  outputNames: string[] | undefined,
  options: InferenceOptions = {},
): Promise<TensorInferOutcome> {
  const ctx = await runStages(
    stageContext(version, { tensors: inputs, ...(outputNames ? { outputNames } : {}) }, options),
    'validate',
    'inference',
  );
  return { outputs: ctx.outputs!, batchSize: ctx.batchSize, rows: ctx.rowCount, timings: ctx.timings };
}

/**
 * Tensors built from file rows (caliper batch's columnar path: one row per dim-0 entry, `rows` of them) enter the
 * stage list at queue, where the model's row rules apply as for /predict (one job along a proven batch axis, the
 * fixed row count, or one row per run), and leave after inference. Rejects as the scheduler does (a full queue, a
 * misaligned output).
 */
export async function runBuiltTensors(
  version: ModelVersion,
  inputs: TensorMap,
  rows: number,
  outputNames: string[] | undefined,
  options: InferenceOptions = {},
): Promise<TensorInferOutcome> {
  const ctx = await runStages(
    stageContext(version, { tensors: inputs, rows, rowRules: true, ...(outputNames ? { outputNames } : {}) }, options),
    'queue',
    'inference',
  );
  return { outputs: ctx.outputs!, batchSize: ctx.batchSize, rows: ctx.rowCount, timings: ctx.timings };
}
