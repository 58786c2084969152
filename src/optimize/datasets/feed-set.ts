/**
 * Model-ready samples: one tensor per model input, rows along the first axis, and what the rows should
 * score (class labels, or numeric targets for regression). Calibration, evaluation and distillation read
 * this shape whether the data came as tensors (`loadDataset`) or as request rows through a model.yaml.
 */
import ort from 'onnxruntime-node';
import type { ModelProto } from '../onnx/onnx-types.ts';
import type { OrtFeeds } from '../onnx/ort-session.ts';
import type { ElementType, TensorData } from '../../runtime/tensor.ts';
import { DatasetError } from './dataset-error.ts';
import type { Dataset } from './dataset.ts';
import { fixedBatchSize, modelInputs, sampleShapeFor } from './input-batch.ts';

export interface FeedSet {
  /** Where it came from, for messages. */
  source: string;
  count: number;
  /** Input name → tensor [count, ...]. */
  inputs: Record<string, TensorData>;
  /** Class index per row (classifiers). */
  labels?: Int32Array;
  /** Class names when labels were strings (index i ↔ labelNames[i]). */
  labelNames?: string[];
  /** Numeric target per row (regression; also set when numeric labels are whole numbers). */
  targets?: Float64Array;
}

export function isFeedSet(value: unknown): value is FeedSet {
  return typeof value === 'object' && value !== null && 'inputs' in value && 'count' in value;
}

/** A single-input data set as the feeds of a model's one input (its per-sample shape checked against the model). */
export function feedSetFromDataset(data: Dataset, model: ModelProto, purpose: string): FeedSet {
  const { input, sampleShape } = sampleShapeFor(data, model, purpose);
  return {
    source: data.source,
    count: data.count,
    inputs: { [input.name]: { type: 'float32', dims: [data.count, ...sampleShape], data: data.features } },
    ...(data.labels ? { labels: data.labels, targets: Float64Array.from(data.labels) } : {}),
    ...(data.labelNames ? { labelNames: data.labelNames } : {}),
  };
}

/** A feed set whose model has one float32 input, as a flat data set (what the distillation trainer reads). */
export function datasetFromFeedSet(set: FeedSet, purpose: string): Dataset {
  const names = Object.keys(set.inputs);
  const tensor = set.inputs[names[0]!]!;
  if (names.length !== 1 || tensor.type !== 'float32') {
    throw new DatasetError(
      `${purpose} data: the student trains on one float32 input tensor; model.yaml builds ${names.map((n) => `${n} (${set.inputs[n]!.type})`).join(', ')}`,
    );
  }
  return {
    source: set.source,
    count: set.count,
    features: tensor.data as Float32Array,
    featureShape: tensor.dims.slice(1),
    ...(set.labels ? { labels: set.labels } : {}),
    ...(set.labelNames ? { labelNames: set.labelNames } : {}),
  };
}

/** Rows [start, start + count) of the feed set (views, no copies). */
export function sliceFeedSet(set: FeedSet, start: number, count: number): FeedSet {
  const end = Math.min(set.count, start + count);
  const inputs: Record<string, TensorData> = {};
  for (const [name, tensor] of Object.entries(set.inputs)) {
    const width = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
    inputs[name] = {
      type: tensor.type,
      dims: [end - start, ...tensor.dims.slice(1)],
      data: tensor.data.slice(start * width, end * width) as TensorData['data'],
    };
  }
  return {
    ...set,
    count: end - start,
    inputs,
    ...(set.labels ? { labels: set.labels.slice(start, end) } : {}),
    ...(set.targets ? { targets: set.targets.slice(start, end) } : {}),
  };
}

const ORT_TYPES: Partial<Record<ElementType, string>> = { bool: 'bool', float16: 'float16' };

/** Rows [start, start + count) as ONNX Runtime feeds (subarray views where possible). */
export function feedsOf(set: FeedSet, start: number, count: number): OrtFeeds {
  const end = Math.min(set.count, start + count);
  const feeds: OrtFeeds = {};
  for (const [name, tensor] of Object.entries(set.inputs)) {
    const width = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
    const dims = [end - start, ...tensor.dims.slice(1)];
    const data = Array.isArray(tensor.data)
      ? tensor.data.slice(start * width, end * width)
      : tensor.data.subarray(start * width, end * width);
    feeds[name] = new ort.Tensor((ORT_TYPES[tensor.type] ?? tensor.type) as 'float32', data as Float32Array, dims);
  }
  return feeds;
}

/** The model's fixed batch size (when an input's first dimension is a number), else undefined. */
export function modelFixedBatch(model: ModelProto): number | undefined {
  for (const input of modelInputs(model)) {
    const fixed = fixedBatchSize(input);
    if (fixed !== undefined) return fixed;
  }
  return undefined;
}

/** Checks that the feed set holds exactly the model's inputs with the per-row sizes it declares. */
export function checkFeedSet(set: FeedSet, model: ModelProto, purpose: string): void {
  const inputs = modelInputs(model);
  const given = Object.keys(set.inputs);
  const missing = inputs.filter((i) => !given.includes(i.name)).map((i) => i.name);
  if (missing.length) {
    throw new DatasetError(
      `${purpose} data ${set.source} builds tensors ${given.join(', ')}, but the model also needs ${missing.join(', ')} (model inputs: ${inputs.map((i) => i.name).join(', ')})`,
    );
  }
  for (const input of inputs) {
    const tensor = set.inputs[input.name]!;
    const perRow = input.shape.slice(1);
    if (perRow.every((d) => typeof d === 'number')) {
      const expected = (perRow as number[]).reduce((a, b) => a * b, 1);
      const actual = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
      if (expected !== actual) {
        throw new DatasetError(
          `${purpose} data ${set.source}: tensor ${input.name} has ${actual} values per row, but the model input expects [${input.shape.map((d) => d ?? '?').join(', ')}] (${expected} per row)`,
        );
      }
      if (tensor.dims.length - 1 !== perRow.length)
        set.inputs[input.name] = { ...tensor, dims: [tensor.dims[0]!, ...(perRow as number[])] };
    }
  }
}

/** Whether a Dataset (flat features) rather than a FeedSet: the shapes readers return. */
export function isDataset(value: unknown): value is Dataset {
  return typeof value === 'object' && value !== null && 'features' in value && 'featureShape' in value;
}
