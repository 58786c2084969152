import { float32Tensor, type OrtTensor } from '../onnx/ort-session.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { DatasetError } from './dataset-error.ts';
import { sampleSize, type Dataset } from './dataset.ts';

/** A graph input the caller feeds (initializers excluded), with its declared shape. */
export interface ModelInput {
  name: string;
  elemType: number;
  shape: (number | string | undefined)[];
}

export function modelInputs(model: ModelProto): ModelInput[] {
  const initializers = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  return (model.graph?.input ?? [])
    .filter((v) => !initializers.has(v.name))
    .map((v) => ({
      name: v.name ?? '',
      elemType: v.type?.tensorType?.elemType ?? 0,
      shape: (v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue ?? d.dimParam),
    }));
}

function describe(shape: ModelInput['shape']): string {
  return `[${shape.map((d) => d ?? '?').join(', ')}]`;
}

/**
 * The per-sample shape to feed a data set into a model's single float input: the input's shape without
 * its batch dimension. Throws a DatasetError naming both shapes when the sizes do not match.
 */
export function sampleShapeFor(
  dataset: Dataset,
  model: ModelProto,
  purpose: string,
): { input: ModelInput; sampleShape: number[] } {
  const inputs = modelInputs(model);
  if (inputs.length !== 1) {
    throw new DatasetError(
      `${purpose} data needs a model with one input; this model has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`,
    );
  }
  const input = inputs[0]!;
  if (input.elemType !== 1)
    throw new DatasetError(
      `${purpose} data feeds float32 inputs; model input ${input.name} has ONNX type ${input.elemType}`,
    );
  const perSample = input.shape.slice(1);
  const known = perSample.every((d) => typeof d === 'number');
  const expected = known ? (perSample as number[]).reduce((a, b) => a * b, 1) : undefined;
  const size = sampleSize(dataset);
  if (input.shape.length === 0 || (expected !== undefined && expected !== size)) {
    throw new DatasetError(
      `${purpose} data ${dataset.source} has ${size} values per sample [${dataset.featureShape.join(', ')}], but model input ${input.name} expects ${describe(input.shape)}` +
        (expected !== undefined ? ` (${expected} per sample)` : ''),
    );
  }
  const sampleShape = known
    ? (perSample as number[])
    : perSample.length === dataset.featureShape.length
      ? dataset.featureShape
      : [size];
  return { input, sampleShape };
}

/** Samples [start, start + count) as a float32 tensor of shape [count, ...sampleShape]. */
export function inputBatch(dataset: Dataset, start: number, count: number, sampleShape: readonly number[]): OrtTensor {
  const size = sampleSize(dataset);
  const end = Math.min(dataset.count, start + count);
  return float32Tensor(dataset.features.subarray(start * size, end * size), [end - start, ...sampleShape]);
}

/** Fixed batch size a model input demands, if any. */
export function fixedBatchSize(input: ModelInput): number | undefined {
  return typeof input.shape[0] === 'number' && input.shape[0] > 0 ? input.shape[0] : undefined;
}
