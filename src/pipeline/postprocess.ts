import type { ModelConfig, PostprocessFieldSpec } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';
import type { TensorSignature } from '../runtime/model-signature.ts';
import { elementCount, type TensorMap } from '../runtime/tensor.ts';

/**
 * One response field. Numbers may be NaN or ±Infinity (as the model answered): JSON answers write them as null,
 * binary/gRPC/Parquet keep them exact. null is a field an operation has no answer for (threshold of NaN, argmax of
 * all-NaN values).
 */
export type PredictionValue =
  | number
  /** An INT64/UINT64 output value beyond 2^53, kept exact (written with every digit in JSON). */
  | bigint
  | string
  | boolean
  | null
  | PredictionValue[]
  | { label: string | number; probability?: number; score?: number }[];
export type Prediction = Record<string, PredictionValue>;

/**
 * Softmax defined for every input: any NaN makes every probability NaN; +Infinity entries share the whole
 * probability (the others get 0); -Infinity entries get 0 (all -Infinity: NaN, there is no distribution).
 */
function softmax(values: number[]): number[] {
  let max = -Infinity;
  let infinite = 0;
  for (const v of values) {
    if (Number.isNaN(v)) return values.map(() => NaN);
    if (v === Infinity) infinite++;
    if (v > max) max = v;
  }
  if (infinite > 0) return values.map((v) => (v === Infinity ? 1 / infinite : 0));
  let sum = 0;
  const exps = values.map((v) => {
    const e = Math.exp(v - max);
    sum += e;
    return e;
  });
  return exps.map((e) => e / sum);
}

function reshape(values: PredictionValue[], dims: readonly number[]): PredictionValue[] {
  if (dims.length <= 1) return values;
  const inner = elementCount(dims.slice(1));
  const out: PredictionValue[] = [];
  for (let i = 0; i < dims[0]!; i++) out.push(reshape(values.slice(i * inner, (i + 1) * inner), dims.slice(1)));
  return out;
}

type Ranked = { label: string | number; probability?: number; score?: number };

/** The k largest values, largest first (ties keep the lower index), by selection: k is small, sorting all is waste. */
function topK(
  values: readonly number[],
  k: number,
  labels: readonly (string | number)[] | undefined,
  key: 'probability' | 'score',
): Ranked[] {
  const taken = new Uint8Array(values.length);
  const ranked: Ranked[] = [];
  for (let n = Math.min(k, values.length); n > 0; n--) {
    let best = -1;
    for (let i = 0; i < values.length; i++) {
      if (
        taken[i] === 0 &&
        (best < 0 || values[i]! > values[best]! || (Number.isNaN(values[best]!) && !Number.isNaN(values[i]!)))
      )
        best = i;
    }
    taken[best] = 1;
    const label = labels ? (labels[best] ?? best) : best;
    ranked.push(key === 'probability' ? { label, probability: values[best]! } : { label, score: values[best]! });
  }
  return ranked;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

type FieldFn = (outputs: TensorMap, row: number, rows: number, done: Prediction) => PredictionValue;

/**
 * Row `row` of an output for a request of `requestRows` rows. The output's first dimension must be those rows; a
 * one-row request owns the whole output whatever its first dimension (a detector's K boxes, a rank-0 value).
 */
function rowValues(outputs: TensorMap, name: string, row: number, requestRows: number): (number | bigint | string)[] {
  const tensor = outputs[name]!;
  const whole = requestRows === 1 && tensor.dims[0] !== 1;
  if (!whole && tensor.dims[0] !== requestRows) {
    throw new CaliperError(
      'CALIPER_OUTPUT_NOT_ALIGNED',
      `output "${name}" has shape [${tensor.dims.join(', ')}] for ${requestRows} instances; its first dimension is not one row per instance, so it cannot be split between them (send one instance per request)`,
    );
  }
  const rows = whole ? 1 : requestRows;
  const size = rows > 0 ? tensor.data.length / rows : 0;
  const out: (number | bigint | string)[] = new Array(size);
  const data = tensor.data;
  for (let i = 0; i < size; i++) {
    const v = data[row * size + i]!;
    // 64-bit integers stay bigints only where a double would round them.
    out[i] = typeof v === 'bigint' && v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
  }
  return out;
}

function compileField(spec: PostprocessFieldSpec, file: string): FieldFn {
  const where = `${file}: postprocess.${spec.name}`;
  const source = spec.source;
  // Arithmetic and comparisons work on doubles: a 64-bit value beyond 2^53 enters them as its nearest double.
  const numeric =
    spec.sigmoid || spec.softmax || spec.argmax || spec.topK !== undefined || spec.threshold !== undefined;
  return (outputs, row, rows, done) => {
    let values: PredictionValue[];
    if ('output' in source) {
      values = rowValues(outputs, source.output, row, rows);
    } else {
      const earlier = done[source.field]!;
      values = Array.isArray(earlier) ? (earlier as PredictionValue[]) : [earlier as PredictionValue];
    }
    if (spec.index !== undefined) {
      if (spec.index >= values.length)
        throw new CaliperError(
          'CALIPER_INFERENCE_FAILED',
          `${where}.index: ${spec.index} is past the output's ${values.length} values`,
        );
      values = [values[spec.index]!];
    }
    if (numeric) values = values.map((v) => (typeof v === 'bigint' ? Number(v) : v));
    if (spec.sigmoid) values = values.map((v) => 1 / (1 + Math.exp(-(v as number))));
    if (spec.softmax) values = softmax(values as number[]);
    if (spec.argmax) {
      // NaN ranks below every number (as in top_k); no number at all has no argmax (null). Ties keep the lower index.
      let best = -1;
      for (let i = 0; i < values.length; i++) {
        const v = values[i] as number;
        if (!Number.isNaN(v) && (best < 0 || v > (values[best] as number))) best = i;
      }
      if (best < 0) return null;
      return spec.labels ? (spec.labels[best] ?? best) : best;
    }
    if (spec.topK !== undefined)
      return topK(values as number[], spec.topK, spec.labels, spec.softmax || spec.sigmoid ? 'probability' : 'score');
    if (spec.threshold !== undefined) {
      if (values.length !== 1)
        throw new CaliperError(
          'CALIPER_INFERENCE_FAILED',
          `${where}.threshold: needs one value per prediction, the source has ${values.length} (pick one with index)`,
        );
      const value = values[0] as number;
      // NaN is neither above nor below the threshold: no verdict (null). ±Infinity compare as usual.
      return Number.isNaN(value) ? null : value > spec.threshold;
    }
    if (spec.reshape) return reshape(values, spec.reshape);
    return values.length === 1 ? values[0]! : values;
  };
}

/** A copy of a response with every NaN and ±Infinity replaced by null: the one rule of every JSON answer. */
export function nonFiniteAsNull<T>(value: T): T {
  if (typeof value === 'number') return (Number.isFinite(value) ? value : null) as T;
  if (Array.isArray(value)) return value.map(nonFiniteAsNull) as T;
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    const out: Record<string, unknown> = {};
    for (const key in value) out[key] = nonFiniteAsNull((value as Record<string, unknown>)[key]);
    return out as T;
  }
  return value;
}

/** model.yaml's postprocess section compiled: output tensors → one prediction object per row. */
export class Postprocessor {
  private readonly fields: { name: string; fn: FieldFn }[];
  readonly outputNames: string[];

  constructor(config: Pick<ModelConfig, 'postprocess' | 'file'>) {
    this.fields = config.postprocess.map((spec) => ({ name: spec.name, fn: compileField(spec, config.file) }));
    this.outputNames = [...new Set(config.postprocess.flatMap((s) => ('output' in s.source ? [s.source.output] : [])))];
  }

  run(outputs: TensorMap, rows: number): Prediction[] {
    const predictions: Prediction[] = new Array(rows);
    for (let r = 0; r < rows; r++) {
      const prediction: Prediction = {};
      for (const field of this.fields) prediction[field.name] = field.fn(outputs, r, rows, prediction);
      predictions[r] = prediction;
    }
    return predictions;
  }

  /** The JSON-schema type of each response field, for the OpenAPI document and the compiled serializer. */
  static fieldSchema(spec: PostprocessFieldSpec, outputs: readonly TensorSignature[]): Record<string, unknown> {
    // nullable: a non-finite number is written as null, and threshold/argmax answer null where they have no answer.
    if (spec.threshold !== undefined) return { type: 'boolean', nullable: true };
    if (spec.argmax) return spec.labels ? { type: 'string', nullable: true } : { type: 'integer', nullable: true };
    if (spec.topK !== undefined) {
      const key = spec.softmax || spec.sigmoid ? 'probability' : 'score';
      return {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            label: spec.labels ? { type: 'string' } : { type: 'integer' },
            [key]: { type: 'number', nullable: true },
          },
        },
      };
    }
    if (spec.reshape) return { type: 'array', items: {} };
    const output =
      'output' in spec.source ? outputs.find((o) => o.name === (spec.source as { output: string }).output) : undefined;
    // The compiled serializer coerces to the schema's type: string outputs must stay strings, bool outputs become true/false.
    // 64-bit integers are `integer`: the compiled serializer writes a bigint with all its digits only as an integer.
    const element =
      output?.type === 'string'
        ? { type: 'string' }
        : output?.type === 'bool'
          ? { type: 'boolean' }
          : output?.type === 'int64' || output?.type === 'uint64'
            ? { type: 'integer' }
            : { type: 'number', nullable: true };
    if (spec.index !== undefined) return element;
    const perRow = output ? elementCount(output.shape.slice(1)) : -1;
    if (perRow === 1) return element;
    return { type: 'array', items: element };
  }
}
