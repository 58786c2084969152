import { CaliperError, invalidInput } from '../errors.ts';
import type { ModelVersion } from '../lifecycle/model-version.ts';
import { misalignedOutputError } from '../runtime/batch-axis.ts';
import { fixedRowCount } from '../runtime/model-signature.ts';
import { joinResults, splitJob } from '../scheduler/row-split.ts';
import type { InferenceJob, InferenceResult } from '../scheduler/scheduler.ts';
import type { InferenceOptions } from './admission.ts';

function inferenceJob(
  inputs: InferenceJob['inputs'],
  rows: number,
  options: InferenceOptions,
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

/**
 * Hands `rows` rows of input tensors to the version's scheduler: the one place a request reaches it (the queue stage,
 * src/pipeline/stage-list.ts). A model with a proven batch axis takes them as one job (the batcher may share its run
 * with other requests; an answer of several rows goes back only if every output has one row per input row). A model
 * without one takes exactly its fixed row count, or one row per run, the answers stacked again.
 */
export function runInference(
  version: ModelVersion,
  inputs: InferenceJob['inputs'],
  rows: number,
  options: InferenceOptions,
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
  return runRowByRow(version, inferenceJob(inputs, rows, options, outputNames));
}

/**
 * Hands tensors sent over v2 or gRPC to the scheduler as they came: one job of `rows` rows (dim 0 for a model with a
 * batch axis, 1 for one without: the model then takes the tensors whole, whatever their first dimension).
 */
export function runTensorsAsSent(
  version: ModelVersion,
  inputs: InferenceJob['inputs'],
  rows: number,
  options: InferenceOptions,
  outputNames?: string[],
): Promise<InferenceResult> {
  return version.scheduler.submit(inferenceJob(inputs, rows, options, outputNames));
}

/** Rows of a multi-row job go back to their instances (or file rows) only when every output has one row per input row. */
function alignedResult(version: ModelVersion, result: InferenceResult, rows: number): InferenceResult {
  const misaligned = misalignedOutputError(version.name, result.outputs, rows);
  if (misaligned) throw misaligned;
  return result;
}

async function runRowByRow(version: ModelVersion, job: InferenceJob): Promise<InferenceResult> {
  const parts = await Promise.all(splitJob(job, 1).map((one) => version.scheduler.submit(one)));
  // Stacking is only meaningful when each one-row run answered one row; anything else would mix rows up.
  for (const name of Object.keys(parts[0]!.outputs)) {
    const odd = parts.map((p) => p.outputs[name]!).find((t) => t.dims[0] !== 1);
    if (odd) {
      throw new CaliperError(
        'CALIPER_OUTPUT_NOT_ALIGNED',
        `model ${version.name}: output "${name}" has shape [${odd.dims.join(', ')}] for a one-row input, so ${job.rows} instances cannot be answered row by row (send them one per request, or use /v2/models/${version.name}/infer)`,
      );
    }
  }
  return { ...joinResults(parts), batchSize: 1 };
}
