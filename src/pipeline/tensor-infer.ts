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
