import { concatRows, sliceRows, type TensorMap } from '../runtime/tensor.ts';
import type { InferenceJob, InferenceResult } from './scheduler.ts';

/**
 * Row split and reassembly along dim 0 (the batch axis), written once: a job cut into runs of at most `rows` rows
 * (the batcher's max_batch_size, or 1 for a model run row by row), a batch's outputs cut back into its jobs' rows,
 * and the answers of a cut job stacked again in order.
 */

/** `inputs` rows [start, start + rows) of every tensor. */
export function sliceInputs(inputs: TensorMap, start: number, rows: number): TensorMap {
  const part: TensorMap = {};
  for (const name in inputs) part[name] = sliceRows(inputs[name]!, start, rows);
  return part;
}

/** The job cut into consecutive jobs of at most `rows` rows each (the whole job when it already fits). */
export function splitJob(job: InferenceJob, rows: number): InferenceJob[] {
  if (job.rows <= rows) return [job];
  const parts: InferenceJob[] = [];
  for (let start = 0; start < job.rows; start += rows) {
    const count = Math.min(rows, job.rows - start);
    parts.push({ ...job, inputs: sliceInputs(job.inputs, start, count), rows: count });
  }
  return parts;
}

/**
 * One job's outputs out of its batch's outputs: rows [offset, offset + rows) of each output it asked for (every
 * output when it named none). The caller has checked that every output has one row per batch row.
 */
export function jobOutputs(
  outputs: TensorMap,
  offset: number,
  rows: number,
  batchRows: number,
  outputNames: readonly string[] | undefined,
): TensorMap {
  const mine: TensorMap = {};
  for (const name in outputs) {
    if (outputNames && !outputNames.includes(name)) continue;
    const tensor = outputs[name]!;
    mine[name] = rows === batchRows ? tensor : sliceRows(tensor, offset, rows);
  }
  return mine;
}

/**
 * The answers of a split job stacked back in order: outputs concatenated along dim 0; the slowest part's queue wait
 * and run time; the largest batch a part ran in.
 */
export function joinResults(parts: readonly InferenceResult[]): InferenceResult {
  if (parts.length === 1) return parts[0]!;
  const outputs: TensorMap = {};
  for (const name in parts[0]!.outputs) outputs[name] = concatRows(parts.map((p) => p.outputs[name]!));
  return {
    outputs,
    queueMs: Math.max(...parts.map((p) => p.queueMs)),
    inferenceMs: Math.max(...parts.map((p) => p.inferenceMs)),
    batchSize: Math.max(...parts.map((p) => p.batchSize)),
  };
}
