import { MODEL_FOLDER_PATHS, resolveModelFolderPath } from './model-folder-path.ts';
import { ConfigReader } from './config-reader.ts';
import { processCoreBudget } from '../system/usable-cores.ts';
import type { FieldType, InputFieldSpec } from './input-field.ts';
import { featureInputs, parseFeatures, type FeaturesSpec } from '../features/feature-config.ts';

/** The typed model.yaml: request fields, preprocess, postprocess and runtime/latency settings. */

export type { FieldType, InputFieldSpec } from './input-field.ts';

export type ScalarStep =
  | { op: 'identity' }
  | { op: 'log1p' }
  | { op: 'standardize'; mean: number; std: number }
  | { op: 'min_max'; min: number; max: number }
  | { op: 'clip'; min: number; max: number }
  | { op: 'divide'; by: number }
  | { op: 'multiply'; by: number };

export type ColumnSpec =
  | { kind: 'numeric'; field: string; steps: ScalarStep[] }
  | { kind: 'one_hot'; field: string; categories: string[]; unknown: 'error' | 'zeros' }
  | { kind: 'lookup'; field: string; table: Record<string, number>; unknown: 'error' | number }
  /** A string field passed through unchanged, into a `dtype: string` tensor (ONNX STRING, v2 BYTES). */
  | { kind: 'text'; field: string };

/** Element types a preprocess tensor can be built as: every type onnxruntime-node takes as an input. */
export const TENSOR_DTYPES = [
  'float32',
  'float64',
  'float16',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
  'string',
] as const;
export type TensorDtype = (typeof TENSOR_DTYPES)[number];

export interface TensorSpec {
  name: string;
  dtype: TensorDtype;
  columns: ColumnSpec[];
  /** Per-row shape (without the batch dimension); defaults to [width]. */
  shape?: number[];
  /**
   * A tensor built from one variable-length array field: rows are padded with `value` to the batch's longest row
   * (or to `to`), and `mask` names a second model input of 1 per real position and 0 per padded one.
   */
  padding?: { value: number; to?: number; mask?: string };
}

export interface PostprocessFieldSpec {
  name: string;
  /** A model output, or another postprocess field computed earlier. */
  source: { output: string } | { field: string };
  index?: number;
  sigmoid?: boolean;
  softmax?: boolean;
  argmax?: boolean;
  topK?: number;
  labels?: string[];
  threshold?: number;
  reshape?: number[];
}

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

/** Where a version's instances run: on worker threads of their own, or in the serving thread. */
export type InstanceKind = 'worker' | 'in_thread';

export interface InstancesSpec {
  count: number;
  /** The kind in force (`auto` resolved at load). */
  kind: InstanceKind;
  /** What model.yaml asked for; `auto` (the default) when it says nothing. */
  requestedKind: InstanceKind | 'auto';
  /** Why `kind` was chosen, for the load log and the model's config (`caliper_instance_kind_reason`). */
  kindReason: string;
  intraOpThreads: number;
  interOpThreads: number;
}

export interface BatchingSpec {
  enabled: boolean;
  maxBatchSize: number;
  preferredBatchSizes: number[];
  /**
   * Whether a batch that reached a preferred size is cut down to the largest preferred size the waiting rows fill
   * (Triton's behaviour, the default: absent means true), or takes every waiting row that fits max_batch_size (false:
   * a preferred size only says when a batch may leave; one run instead of several when requests pile up behind a
   * running batch). model.yaml `batching.cut_to_preferred`.
   */
  cutToPreferred?: boolean;
  /** 'auto' lets the scheduler tune the delay to the SLA. */
  maxQueueDelayUs: number | 'auto';
  maxQueueSize: number;
  timeoutMs: number;
  priorityLevels: number;
}

export interface CacheSpec {
  enabled: boolean;
  backend: 'memory' | 'redis';
  maxEntries: number;
  maxBytes: number;
  ttlS: number;
  redisUrl?: string;
}

export interface SlaSpec {
  p99Ms: number;
  windowS: number;
  breachWindows: number;
}

export type VersionPolicy = { kind: 'latest' } | { kind: 'all' } | { kind: 'specific'; versions: number[] };

export interface ModelConfig {
  name: string;
  runtime: 'onnx';
  description?: string;
  /** The file the config was read from, for error messages. */
  file: string;
  /** The model folder the config lives in. */
  dir: string;
  versionPolicy: VersionPolicy;
  inputs: InputFieldSpec[];
  unknownFields: 'reject' | 'ignore';
  maxInstancesPerRequest: number;
  tensors: TensorSpec[];
  postprocess: PostprocessFieldSpec[];
  hooks?: string;
  optimization: { graphLevel: GraphOptimizationLevel };
  instances: InstancesSpec;
  warmup: { batchSize: number; runs: number };
  batching: BatchingSpec;
  cache: CacheSpec;
  sla?: SlaSpec;
  /** Per-entity features looked up before preprocess (src/features/feature-config.ts). */
  features?: FeaturesSpec;
}

const FIELD_TYPES: readonly FieldType[] = ['number', 'integer', 'string', 'boolean', 'array'];
const TOP_LEVEL_KEYS = [
  'name',
  'runtime',
  'description',
  'versions',
  'inputs',
  'unknown_fields',
  'max_instances_per_request',
  'preprocess',
  'postprocess',
  'hooks',
  'optimization',
  'instances',
  'warmup',
  'batching',
  'cache',
  'sla',
  'features',
] as const;

function parseInputs(r: ConfigReader, raw: unknown): InputFieldSpec[] {
  const inputs = r.object(raw, 'inputs');
  const specs = Object.entries(inputs).map(([name, value]) => {
    const path = `inputs.${name}`;
    const o = r.object(value, path);
    r.onlyKeys(o, path, [
      'type',
      'required',
      'description',
      'minimum',
      'maximum',
      'enum',
      'items',
      'length',
      'min_length',
      'max_length',
      'default',
    ]);
    const spec: InputFieldSpec = {
      name,
      type: r.oneOf(o.type, `${path}.type`, FIELD_TYPES),
      required: o.required === undefined ? true : r.boolean(o.required, `${path}.required`),
    };
    if (o.description !== undefined) spec.description = r.string(o.description, `${path}.description`);
    if (o.minimum !== undefined) spec.minimum = r.number(o.minimum, `${path}.minimum`);
    if (o.maximum !== undefined) spec.maximum = r.number(o.maximum, `${path}.maximum`);
    if (o.enum !== undefined) {
      if (spec.type !== 'string') r.fail(`${path}.enum`, 'enum only on string fields (type: string)', o.enum);
      spec.enum = r.stringList(o.enum, `${path}.enum`, { minLength: 1, unique: true });
    }
    if (spec.type === 'array') {
      spec.items = o.items === undefined ? 'number' : r.oneOf(o.items, `${path}.items`, ['number', 'integer'] as const);
      if (o.length !== undefined) spec.length = r.number(o.length, `${path}.length`, { integer: true, min: 1 });
      if (o.min_length !== undefined)
        spec.minLength = r.number(o.min_length, `${path}.min_length`, { integer: true, min: 1 });
      if (o.max_length !== undefined)
        spec.maxLength = r.number(o.max_length, `${path}.max_length`, { integer: true, min: 1 });
      if (spec.length !== undefined && (spec.minLength !== undefined || spec.maxLength !== undefined)) {
        r.fail(
          `${path}.length`,
          'either length (a fixed length) or min_length/max_length (a variable length), not both',
          o.length,
        );
      }
      if (spec.minLength !== undefined && spec.maxLength !== undefined && spec.minLength > spec.maxLength) {
        r.fail(`${path}.max_length`, `a length >= min_length (${spec.minLength})`, o.max_length);
      }
    } else if (
      o.items !== undefined ||
      o.length !== undefined ||
      o.min_length !== undefined ||
      o.max_length !== undefined
    ) {
      r.fail(
        `${path}.items`,
        'items/length/min_length/max_length only on array fields (type: array)',
        o.items ?? o.length ?? o.min_length ?? o.max_length,
      );
    }
    if (o.default !== undefined) {
      if (!['number', 'string', 'boolean'].includes(typeof o.default))
        r.fail(`${path}.default`, 'a number, string or boolean', o.default);
      spec.default = o.default as number | string | boolean;
      spec.required = false;
    }
    return spec;
  });
  if (specs.length === 0) r.fail('inputs', 'at least one request field');
  return specs;
}

const PRIMARY_OPS = ['identity', 'log1p', 'standardize', 'min_max', 'clip', 'one_hot', 'lookup'] as const;

function parseColumn(r: ConfigReader, raw: unknown, path: string, inputs: InputFieldSpec[]): ColumnSpec {
  const o = r.object(raw, path);
  const primary = PRIMARY_OPS.filter((op) => op in o);
  if (primary.length !== 1) {
    r.fail(
      path,
      `exactly one transform naming a request field (${PRIMARY_OPS.join(', ')}), e.g. { log1p: amount }`,
      Object.keys(o).join(', ') || o,
    );
  }
  const op = primary[0]!;
  const field = r.string(o[op], `${path}.${op}`);
  const input = inputs.find((i) => i.name === field);
  if (!input)
    r.fail(
      `${path}.${op}`,
      `the name of a field declared under inputs (${inputs.map((i) => i.name).join(', ')})`,
      field,
    );

  if ((op === 'one_hot' || op === 'lookup') && input.type !== 'string') {
    // Both match the request value as text: on a number, boolean or array field every request would be "unknown".
    r.fail(
      `${path}.${op}`,
      `a string field (inputs.${field} is ${input.type === 'array' || input.type === 'integer' ? 'an' : 'a'} ${input.type}: ${op} matches text; use a numeric transform)`,
      field,
    );
  }
  if (op === 'one_hot') {
    r.onlyKeys(o, path, ['one_hot', 'categories', 'unknown']);
    const categories =
      o.categories !== undefined
        ? r.stringList(o.categories, `${path}.categories`, { minLength: 1, unique: true })
        : input.enum;
    if (!categories) r.fail(`${path}.categories`, `a category list (or an enum on inputs.${field})`);
    const unknown =
      o.unknown === undefined ? 'error' : r.oneOf(o.unknown, `${path}.unknown`, ['error', 'zeros'] as const);
    return { kind: 'one_hot', field, categories, unknown };
  }
  if (op === 'lookup') {
    r.onlyKeys(o, path, ['lookup', 'table', 'unknown']);
    let table: Record<string, number>;
    if (o.table === undefined) {
      if (!input.enum) r.fail(`${path}.table`, `a category → index table (or an enum on inputs.${field})`);
      table = Object.fromEntries(input.enum.map((c, i) => [c, i]));
    } else if (Array.isArray(o.table)) {
      table = Object.fromEntries(r.stringList(o.table, `${path}.table`, { unique: true }).map((c, i) => [c, i]));
    } else {
      const t = r.object(o.table, `${path}.table`);
      table = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, r.number(v, `${path}.table.${k}`)]));
    }
    const unknown = o.unknown === undefined || o.unknown === 'error' ? 'error' : r.number(o.unknown, `${path}.unknown`);
    return { kind: 'lookup', field, table, unknown };
  }

  r.onlyKeys(o, path, [op, 'mean', 'std', 'min', 'max', 'divide', 'multiply']);
  if (op === 'identity' && input.type === 'string' && Object.keys(o).length === 1) return { kind: 'text', field };
  if (input.type === 'string')
    r.fail(`${path}.${op}`, `a numeric field (inputs.${field} is a string: use one_hot or lookup)`, field);
  const steps: ScalarStep[] = [];
  switch (op) {
    case 'identity':
      steps.push({ op: 'identity' });
      break;
    case 'log1p':
      steps.push({ op: 'log1p' });
      break;
    case 'standardize':
      steps.push({
        op: 'standardize',
        mean: r.number(o.mean, `${path}.mean`),
        std: r.number(o.std, `${path}.std`, { exclusiveMin: 0 }),
      });
      break;
    case 'min_max': {
      const min = r.number(o.min, `${path}.min`);
      const max = r.number(o.max, `${path}.max`);
      if (max <= min) r.fail(`${path}.max`, `a number greater than min (${min})`, max);
      steps.push({ op: 'min_max', min, max });
      break;
    }
    case 'clip': {
      const min = r.number(o.min, `${path}.min`);
      const max = r.number(o.max, `${path}.max`);
      if (max < min) r.fail(`${path}.max`, `a number >= min (${min})`, max);
      steps.push({ op: 'clip', min, max });
      break;
    }
  }
  if (op !== 'clip' && op !== 'min_max' && (o.min !== undefined || o.max !== undefined))
    r.fail(`${path}.min`, `min/max only with clip or min_max`, o.min ?? o.max);
  if (op !== 'standardize' && (o.mean !== undefined || o.std !== undefined))
    r.fail(`${path}.mean`, `mean/std only with standardize`, o.mean ?? o.std);
  if (o.divide !== undefined)
    steps.push({ op: 'divide', by: r.number(o.divide, `${path}.divide`, { exclusiveMin: 0 }) });
  if (o.multiply !== undefined) steps.push({ op: 'multiply', by: r.number(o.multiply, `${path}.multiply`) });
  return { kind: 'numeric', field, steps };
}

function parseTensor(
  r: ConfigReader,
  raw: Record<string, unknown>,
  path: string,
  inputs: InputFieldSpec[],
): TensorSpec {
  r.onlyKeys(raw, path, ['tensor', 'dtype', 'columns', 'shape', 'pad', 'pad_to', 'attention_mask']);
  const spec: TensorSpec = {
    name: r.string(raw.tensor, `${path}.tensor`),
    dtype: raw.dtype === undefined ? 'float32' : r.oneOf(raw.dtype, `${path}.dtype`, TENSOR_DTYPES),
    columns: r
      .array(raw.columns, `${path}.columns`, { minLength: 1 })
      .map((c, i) => parseColumn(r, c, `${path}.columns[${i}]`, inputs)),
  };
  spec.columns.forEach((column, i) => {
    if ((column.kind === 'text') !== (spec.dtype === 'string')) {
      r.fail(
        `${path}.columns[${i}]`,
        spec.dtype === 'string'
          ? `{ identity: FIELD } of a string field (a dtype: string tensor passes strings through unchanged)`
          : `a numeric transform (inputs.${column.field} is a string: use one_hot or lookup, or dtype: string)`,
        column.field,
      );
    }
  });
  // shape: [] builds a rank-1 tensor [N] (one value per row), as models taking a vector of scalars or strings expect.
  if (raw.shape !== undefined) spec.shape = r.numberList(raw.shape, `${path}.shape`, { integer: true, min: 1 });
  const variable = spec.columns
    .map((c) => inputs.find((i) => i.name === c.field)!)
    .find((i) => i.type === 'array' && i.length === undefined);
  if (raw.pad !== undefined || raw.pad_to !== undefined || raw.attention_mask !== undefined) {
    const key = raw.pad !== undefined ? 'pad' : raw.pad_to !== undefined ? 'pad_to' : 'attention_mask';
    if (
      !variable ||
      spec.columns.length !== 1 ||
      spec.columns[0]!.kind !== 'numeric' ||
      spec.shape !== undefined ||
      spec.dtype === 'string'
    ) {
      r.fail(
        `${path}.${key}`,
        'padding only on a tensor of one column, a variable-length array field (min_length/max_length), without shape',
        raw[key],
      );
    }
    const padding: NonNullable<TensorSpec['padding']> = {
      value: raw.pad === undefined ? 0 : r.number(raw.pad, `${path}.pad`),
    };
    const integer = !['float32', 'float64', 'float16'].includes(spec.dtype);
    const unsigned = spec.dtype.startsWith('uint') || spec.dtype === 'bool';
    if (
      (integer && !Number.isInteger(padding.value)) ||
      (unsigned && padding.value < 0) ||
      !Number.isSafeInteger(Math.round(padding.value))
    ) {
      r.fail(`${path}.pad`, `a value of the tensor's dtype ${spec.dtype}`, raw.pad);
    }
    if (raw.pad_to !== undefined) {
      padding.to = r.number(raw.pad_to, `${path}.pad_to`, { integer: true, min: 1 });
      if (variable.maxLength === undefined || variable.maxLength > padding.to) {
        r.fail(
          `${path}.pad_to`,
          `a length >= inputs.${variable.name}.max_length (set max_length <= pad_to so no row is longer)`,
          raw.pad_to,
        );
      }
    }
    if (raw.attention_mask !== undefined) {
      padding.mask = r.string(raw.attention_mask, `${path}.attention_mask`);
      if (padding.mask === spec.name)
        r.fail(`${path}.attention_mask`, `a model input other than ${spec.name}`, raw.attention_mask);
    }
    spec.padding = padding;
  } else if (
    variable &&
    spec.columns.length === 1 &&
    spec.columns[0]!.kind === 'numeric' &&
    spec.shape === undefined &&
    spec.dtype !== 'string'
  ) {
    spec.padding = { value: 0 };
  }
  return spec;
}

function parsePreprocess(r: ConfigReader, raw: unknown, inputs: InputFieldSpec[]): TensorSpec[] {
  const o = r.object(raw, 'preprocess');
  if (o.tensors !== undefined) {
    r.onlyKeys(o, 'preprocess', ['tensors']);
    const tensors = r
      .array(o.tensors, 'preprocess.tensors', { minLength: 1 })
      .map((t, i) => parseTensor(r, r.object(t, `preprocess.tensors[${i}]`), `preprocess.tensors[${i}]`, inputs));
    const built = new Set<string>();
    tensors.forEach((t, i) => {
      for (const name of [t.name, t.padding?.mask]) {
        if (name === undefined) continue;
        if (built.has(name))
          r.fail(
            `preprocess.tensors[${i}]${name === t.name ? '.tensor' : '.attention_mask'}`,
            `a model input no other tensor or mask builds`,
            name,
          );
        built.add(name);
      }
    });
    return tensors;
  }
  return [parseTensor(r, o, 'preprocess', inputs)];
}

function parsePostprocess(r: ConfigReader, raw: unknown): PostprocessFieldSpec[] {
  const o = r.object(raw, 'postprocess');
  const fields: PostprocessFieldSpec[] = [];
  for (const [name, value] of Object.entries(o)) {
    const path = `postprocess.${name}`;
    const f = r.object(value, path);
    r.onlyKeys(f, path, [
      'output',
      'of',
      'index',
      'sigmoid',
      'softmax',
      'argmax',
      'top_k',
      'labels',
      'threshold',
      'reshape',
    ]);
    if ((f.output === undefined) === (f.of === undefined))
      r.fail(path, 'exactly one of output (a model output name) or of (an earlier postprocess field)');
    let source: PostprocessFieldSpec['source'];
    if (f.output !== undefined) {
      source = { output: r.string(f.output, `${path}.output`) };
    } else {
      const of = r.string(f.of, `${path}.of`);
      if (!fields.some((p) => p.name === of))
        r.fail(
          `${path}.of`,
          `a postprocess field declared above (${fields.map((p) => p.name).join(', ') || 'none'})`,
          of,
        );
      source = { field: of };
    }
    const spec: PostprocessFieldSpec = { name, source };
    if (f.index !== undefined) spec.index = r.number(f.index, `${path}.index`, { integer: true, min: 0 });
    if (f.sigmoid !== undefined) spec.sigmoid = r.boolean(f.sigmoid, `${path}.sigmoid`);
    if (f.softmax !== undefined) spec.softmax = r.boolean(f.softmax, `${path}.softmax`);
    if (f.argmax !== undefined) spec.argmax = r.boolean(f.argmax, `${path}.argmax`);
    if (f.top_k !== undefined) spec.topK = r.number(f.top_k, `${path}.top_k`, { integer: true, min: 1 });
    if (f.labels !== undefined) spec.labels = r.stringList(f.labels, `${path}.labels`, { minLength: 1 });
    if (f.threshold !== undefined) spec.threshold = r.number(f.threshold, `${path}.threshold`);
    if (f.reshape !== undefined)
      spec.reshape = r.numberList(f.reshape, `${path}.reshape`, { integer: true, min: 1, minLength: 1 });
    if (spec.argmax && spec.topK) r.fail(`${path}.top_k`, 'either argmax or top_k, not both');
    fields.push(spec);
  }
  if (fields.length === 0) r.fail('postprocess', 'at least one response field');
  return fields;
}

function parseInstances(r: ConfigReader, raw: unknown): InstancesSpec {
  const o = raw === undefined ? {} : r.object(raw, 'instances');
  r.onlyKeys(o, 'instances', ['count', 'kind', 'intra_op_threads', 'inter_op_threads']);
  const count = o.count === undefined ? 1 : r.number(o.count, 'instances.count', { integer: true, min: 1, max: 64 });
  // Instances divide this process's cores (a `serve --workers` worker's share of them): never more threads than cores.
  const defaultThreads = Math.max(1, Math.floor(processCoreBudget() / count));
  const requestedKind =
    o.kind === undefined ? 'auto' : r.oneOf(o.kind, 'instances.kind', ['auto', 'worker', 'in_thread'] as const);
  return {
    count,
    ...instanceKindFor(requestedKind, processCoreBudget()),
    intraOpThreads:
      o.intra_op_threads === undefined
        ? defaultThreads
        : r.number(o.intra_op_threads, 'instances.intra_op_threads', { integer: true, min: 1 }),
    interOpThreads:
      o.inter_op_threads === undefined
        ? 1
        : r.number(o.inter_op_threads, 'instances.inter_op_threads', { integer: true, min: 1 }),
  };
}

/**
 * Resolves `instances.kind`. `auto` runs the model in the serving thread when the process can use one core (its CPU
 * affinity, cgroup quota or `serve --workers` share): a worker thread would then share that core with the serving
 * thread and add a hop and two wake-ups per batch for nothing. With more cores, worker threads let the event loop
 * parse and answer requests while a batch computes.
 */
export function instanceKindFor(
  requested: InstanceKind | 'auto',
  cores: number,
): Pick<InstancesSpec, 'kind' | 'requestedKind' | 'kindReason'> {
  if (requested !== 'auto') return { kind: requested, requestedKind: requested, kindReason: 'set in model.yaml' };
  return cores <= 1
    ? {
        kind: 'in_thread',
        requestedKind: 'auto',
        kindReason: 'auto: the process can use 1 core (CPU affinity, cgroup quota or serve --workers share)',
      }
    : {
        kind: 'worker',
        requestedKind: 'auto',
        kindReason: `auto: the process can use ${cores} cores, so a batch computes on a worker thread while the event loop serves`,
      };
}

function parseBatching(r: ConfigReader, raw: unknown): BatchingSpec {
  const defaults: BatchingSpec = {
    enabled: false,
    maxBatchSize: 1,
    preferredBatchSizes: [],
    maxQueueDelayUs: 0,
    maxQueueSize: 10_000,
    timeoutMs: 30_000,
    priorityLevels: 1,
  };
  if (raw === undefined || raw === false) return defaults;
  const o = r.object(raw, 'batching');
  r.onlyKeys(o, 'batching', [
    'enabled',
    'max_batch_size',
    'preferred_batch_sizes',
    'cut_to_preferred',
    'max_queue_delay_us',
    'max_queue_size',
    'timeout_ms',
    'priority_levels',
  ]);
  const maxBatchSize =
    o.max_batch_size === undefined
      ? 64
      : r.number(o.max_batch_size, 'batching.max_batch_size', { integer: true, min: 1 });
  const preferred =
    o.preferred_batch_sizes === undefined
      ? []
      : r.numberList(o.preferred_batch_sizes, 'batching.preferred_batch_sizes', { integer: true, min: 1 });
  preferred.forEach((size, i) => {
    if (size > maxBatchSize)
      r.fail(`batching.preferred_batch_sizes[${i}]`, `a size <= max_batch_size (${maxBatchSize})`, size);
  });
  return {
    enabled: o.enabled === undefined ? true : r.boolean(o.enabled, 'batching.enabled'),
    maxBatchSize,
    preferredBatchSizes: [...preferred].sort((a, b) => a - b),
    cutToPreferred:
      o.cut_to_preferred === undefined ? true : r.boolean(o.cut_to_preferred, 'batching.cut_to_preferred'),
    maxQueueDelayUs:
      o.max_queue_delay_us === undefined
        ? 500
        : o.max_queue_delay_us === 'auto'
          ? 'auto'
          : r.number(o.max_queue_delay_us, 'batching.max_queue_delay_us', { min: 0 }),
    maxQueueSize:
      o.max_queue_size === undefined
        ? defaults.maxQueueSize
        : r.number(o.max_queue_size, 'batching.max_queue_size', { integer: true, min: 1 }),
    timeoutMs:
      o.timeout_ms === undefined ? defaults.timeoutMs : r.number(o.timeout_ms, 'batching.timeout_ms', { min: 1 }),
    priorityLevels:
      o.priority_levels === undefined
        ? 1
        : r.number(o.priority_levels, 'batching.priority_levels', { integer: true, min: 1, max: 16 }),
  };
}

function parseCache(r: ConfigReader, raw: unknown): CacheSpec {
  const defaults: CacheSpec = {
    enabled: false,
    backend: 'memory',
    maxEntries: 10_000,
    maxBytes: 64 * 1024 * 1024,
    ttlS: 60,
  };
  if (raw === undefined || raw === false) return defaults;
  const o = r.object(raw, 'cache');
  r.onlyKeys(o, 'cache', ['enabled', 'backend', 'max_entries', 'max_bytes', 'ttl_s', 'redis_url']);
  const spec: CacheSpec = {
    enabled: o.enabled === undefined ? true : r.boolean(o.enabled, 'cache.enabled'),
    backend: o.backend === undefined ? 'memory' : r.oneOf(o.backend, 'cache.backend', ['memory', 'redis'] as const),
    maxEntries:
      o.max_entries === undefined
        ? defaults.maxEntries
        : r.number(o.max_entries, 'cache.max_entries', { integer: true, min: 1 }),
    maxBytes:
      o.max_bytes === undefined
        ? defaults.maxBytes
        : r.number(o.max_bytes, 'cache.max_bytes', { integer: true, min: 1 }),
    ttlS: o.ttl_s === undefined ? defaults.ttlS : r.number(o.ttl_s, 'cache.ttl_s', { exclusiveMin: 0 }),
  };
  if (o.redis_url !== undefined) spec.redisUrl = r.string(o.redis_url, 'cache.redis_url');
  if (spec.backend === 'redis' && !spec.redisUrl) r.fail('cache.redis_url', 'a redis:// URL when backend is redis');
  return spec;
}

function parseSla(r: ConfigReader, raw: unknown): SlaSpec | undefined {
  if (raw === undefined) return undefined;
  const o = r.object(raw, 'sla');
  r.onlyKeys(o, 'sla', ['p99_ms', 'window_s', 'breach_windows']);
  return {
    p99Ms: r.number(o.p99_ms, 'sla.p99_ms', { exclusiveMin: 0 }),
    windowS: o.window_s === undefined ? 10 : r.number(o.window_s, 'sla.window_s', { exclusiveMin: 0 }),
    breachWindows:
      o.breach_windows === undefined ? 3 : r.number(o.breach_windows, 'sla.breach_windows', { integer: true, min: 1 }),
  };
}

function parseVersions(r: ConfigReader, raw: unknown): VersionPolicy {
  if (raw === undefined || raw === 'latest') return { kind: 'latest' };
  if (raw === 'all') return { kind: 'all' };
  if (typeof raw === 'number')
    return { kind: 'specific', versions: [r.number(raw, 'versions', { integer: true, min: 1 })] };
  if (Array.isArray(raw))
    return { kind: 'specific', versions: r.numberList(raw, 'versions', { integer: true, min: 1, minLength: 1 }) };
  return r.fail('versions', 'latest, all, a version number or a list of version numbers', raw);
}

/** Validates a parsed model.yaml document. `file` and `dir` say where it came from. */
export function parseModelConfig(document: unknown, file: string, dir: string): ModelConfig {
  const r = new ConfigReader(file);
  const o = r.object(document, '');
  r.onlyKeys(o, '', TOP_LEVEL_KEYS);
  const name = r.string(o.name, 'name');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name))
    r.fail('name', 'letters, digits, "_", "-" or "." (it appears in URLs)', name);
  if (o.runtime !== undefined) r.oneOf(o.runtime, 'runtime', ['onnx'] as const);
  const inputs = parseInputs(r, o.inputs);
  const features = o.features === undefined ? undefined : parseFeatures(r, o.features, inputs);
  const warmup = o.warmup === undefined ? {} : r.object(o.warmup, 'warmup');
  r.onlyKeys(warmup, 'warmup', ['batch_size', 'runs']);
  const optimization = o.optimization === undefined ? {} : r.object(o.optimization, 'optimization');
  r.onlyKeys(optimization, 'optimization', ['graph_level']);
  const config: ModelConfig = {
    name,
    runtime: 'onnx',
    file,
    dir,
    versionPolicy: parseVersions(r, o.versions),
    inputs,
    unknownFields:
      o.unknown_fields === undefined
        ? 'reject'
        : r.oneOf(o.unknown_fields, 'unknown_fields', ['reject', 'ignore'] as const),
    maxInstancesPerRequest:
      o.max_instances_per_request === undefined
        ? 10_000
        : r.number(o.max_instances_per_request, 'max_instances_per_request', { integer: true, min: 1 }),
    // Preprocess columns may name looked-up feature fields as well as request fields.
    tensors: parsePreprocess(r, o.preprocess, [...inputs, ...featureInputs(features)]),
    postprocess: parsePostprocess(r, o.postprocess),
    optimization: {
      graphLevel:
        optimization.graph_level === undefined
          ? 'all'
          : r.oneOf(optimization.graph_level, 'optimization.graph_level', [
              'disabled',
              'basic',
              'extended',
              'all',
            ] as const),
    },
    instances: parseInstances(r, o.instances),
    warmup: {
      batchSize:
        warmup.batch_size === undefined
          ? 1
          : r.number(warmup.batch_size, 'warmup.batch_size', { integer: true, min: 1 }),
      runs: warmup.runs === undefined ? 2 : r.number(warmup.runs, 'warmup.runs', { integer: true, min: 0 }),
    },
    batching: parseBatching(r, o.batching),
    cache: parseCache(r, o.cache),
  };
  if (o.description !== undefined) config.description = r.string(o.description, 'description');
  if (o.hooks !== undefined) {
    config.hooks = r.string(o.hooks, 'hooks');
    resolveModelFolderPath(dir, config.hooks, MODEL_FOLDER_PATHS.hooks, file);
  }
  const sla = parseSla(r, o.sla);
  if (sla) config.sla = sla;
  if (features) {
    if (features.store.kind === 'memory')
      resolveModelFolderPath(dir, features.store.source, MODEL_FOLDER_PATHS.featuresSource, file);
    config.features = features;
  }
  return config;
}
