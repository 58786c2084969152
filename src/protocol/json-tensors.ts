import { describeValue } from '../config/config-reader.ts';
import { invalidInput } from '../errors.ts';
import { checkText } from '../runtime/string-elements.ts';
import { elementCount, typedArrayOf, type TensorData, type TensorMap } from '../runtime/tensor.ts';
import { elementTypeOf, isV2Datatype, V2_DATATYPES, v2DatatypeOf, type V2Datatype } from './datatypes.ts';

/** An input tensor of a v2 JSON inference request. */
export interface V2InputTensor {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Record<string, unknown>;
  data?: unknown;
}

export interface V2InferRequest {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: V2InputTensor[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
}

export interface V2OutputTensor {
  name: string;
  shape: number[];
  datatype: V2Datatype;
  parameters?: Record<string, unknown>;
  data?: (number | string | boolean | bigint)[];
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** How deep `data` arrays may nest: far beyond any tensor's rank, far below what would exhaust a stack. */
export const MAX_DATA_NESTING = 64;

/**
 * Flattens nested `data` arrays (row-major), as the protocol allows either form. Iterative, with a depth limit,
 * so a hostile body nested 100,000 deep is a 400 naming the field rather than a stack overflow.
 */
function flatten(where: string, data: unknown, out: unknown[]): void {
  if (!Array.isArray(data)) {
    out.push(data);
    return;
  }
  const stack: { items: unknown[]; next: number }[] = [{ items: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.next++];
    if (!Array.isArray(item)) {
      out.push(item);
      continue;
    }
    if (stack.length >= MAX_DATA_NESTING)
      throw invalidInput(
        `${where}: arrays nested more than ${MAX_DATA_NESTING} deep (a tensor's data nests at most once per dimension)`,
      );
    stack.push({ items: item, next: 0 });
  }
}

/** The largest finite FP32 value; a JSON number beyond it would become Infinity in the tensor. */
const FP32_MAX = 3.4028234663852886e38;

/** The values each integer datatype holds; a JSON value outside them is an error, never a silent wrap-around. */
const INTEGER_RANGES: Partial<Record<V2Datatype, readonly [number, number]>> = {
  INT8: [-128, 127],
  UINT8: [0, 255],
  INT16: [-32768, 32767],
  UINT16: [0, 65535],
  INT32: [-2147483648, 2147483647],
  UINT32: [0, 4294967295],
};

/** 64-bit integers come as numbers (exact below 2^53) or, parsed exactly, as bigints (see exact-json.ts). */
const BIG_RANGES: Partial<Record<V2Datatype, readonly [bigint, bigint]>> = {
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
  UINT64: [0n, 2n ** 64n - 1n],
};

/** Converts the flat JSON values of one tensor into its typed storage, checking each element. */
export function valuesToTensorData(
  name: string,
  datatype: V2Datatype,
  shape: number[],
  flat: readonly unknown[],
): TensorData {
  const type = elementTypeOf(datatype);
  const where = `inputs.${name}.data`;
  const expected = elementCount(shape);
  if (flat.length !== expected)
    throw invalidInput(`${where}: shape [${shape.join(', ')}] needs ${expected} values, got ${flat.length}`);
  if (type === 'string') {
    return {
      type,
      dims: shape,
      data: flat.map((v, i) => {
        if (typeof v !== 'string')
          throw invalidInput(`${where}[${i}]: expected a string (BYTES), got ${describeValue(v)}`);
        return checkText(`${where}[${i}]: BYTES element`, v);
      }),
    };
  }
  const data = typedArrayOf(type, expected);
  const integer = type !== 'float32' && type !== 'float64' && type !== 'float16';
  const range = INTEGER_RANGES[datatype];
  const big = BIG_RANGES[datatype];
  for (let i = 0; i < expected; i++) {
    let v = flat[i];
    if (big) {
      // Exact: a bigint (an integer literal beyond 2^53, parsed exactly) or a safe integer; a rounded double never.
      if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isSafeInteger(v))) {
        throw invalidInput(
          `${where}[${i}]: expected an integer (${datatype}) written with all its digits, got ${describeValue(v)}`,
        );
      }
      const exact = BigInt(v);
      if (exact < big[0] || exact > big[1])
        throw invalidInput(
          `${where}[${i}]: expected an integer from ${big[0]} to ${big[1]} (${datatype}), got ${exact}`,
        );
      (data as BigInt64Array)[i] = exact;
      continue;
    }
    if (typeof v === 'bigint') v = Number(v);
    if (type === 'bool') {
      if (typeof v !== 'boolean')
        throw invalidInput(`${where}[${i}]: expected true or false (BOOL), got ${describeValue(v)}`);
      (data as Uint8Array)[i] = v ? 1 : 0;
      continue;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw invalidInput(
        `${where}[${i}]: expected ${integer ? 'an integer' : 'a finite number'} (${datatype}), got ${describeValue(v)}`,
      );
    }
    if (range && (v < range[0] || v > range[1])) {
      throw invalidInput(`${where}[${i}]: expected an integer from ${range[0]} to ${range[1]} (${datatype}), got ${v}`);
    }
    if (type === 'float16') throw invalidInput(`${where}: FP16 inputs must be sent as binary data, not JSON`);
    if (type === 'float32' && (v > FP32_MAX || v < -FP32_MAX)) {
      throw invalidInput(`${where}[${i}]: expected a number from -3.4028235e38 to 3.4028235e38 (FP32), got ${v}`);
    } else (data as Float32Array)[i] = v;
  }
  return { type, dims: shape, data };
}

export function parseTensorHeader(
  raw: unknown,
  index: number,
): { name: string; datatype: V2Datatype; shape: number[] } {
  const where = `inputs[${index}]`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw invalidInput(`${where}: expected a tensor object {name, shape, datatype, data}, got ${describeValue(raw)}`);
  const t = raw as Record<string, unknown>;
  if (typeof t.name !== 'string' || t.name === '')
    throw invalidInput(`${where}.name: expected a non-empty string, got ${describeValue(t.name)}`);
  if (!isV2Datatype(t.datatype))
    throw invalidInput(
      `inputs.${t.name}.datatype: expected one of ${Object.keys(V2_DATATYPES).join(', ')}, got ${describeValue(t.datatype)}`,
    );
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    throw invalidInput(
      `inputs.${t.name}.shape: expected an array of non-negative integers, got ${describeValue(t.shape)}`,
    );
  }
  return { name: t.name, datatype: t.datatype, shape: t.shape as number[] };
}

/** Parses the JSON body of POST /v2/models/{name}/infer into tensors (binary data handled by the caller). */
export function parseInferRequest(body: unknown): {
  request: V2InferRequest;
  headers: ReturnType<typeof parseTensorHeader>[];
} {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalidInput(`body: expected an inference request object {inputs: [...]}, got ${describeValue(body)}`);
  const request = body as V2InferRequest;
  if (request.id !== undefined && typeof request.id !== 'string')
    throw invalidInput(`id: expected a string, got ${describeValue(request.id)}`);
  if (!Array.isArray(request.inputs) || request.inputs.length === 0)
    throw invalidInput(`inputs: expected a non-empty array of tensors, got ${describeValue(request.inputs)}`);
  if (request.outputs !== undefined) {
    if (!Array.isArray(request.outputs))
      throw invalidInput(`outputs: expected an array of {name}, got ${describeValue(request.outputs)}`);
    request.outputs.forEach((o, i) => {
      if (typeof o !== 'object' || o === null || typeof o.name !== 'string')
        throw invalidInput(`outputs[${i}].name: expected a string`);
    });
  }
  const headers = request.inputs.map((t, i) => parseTensorHeader(t, i));
  const seen = new Set<string>();
  for (const h of headers) {
    if (seen.has(h.name)) throw invalidInput(`inputs.${h.name}: the input is given twice`);
    seen.add(h.name);
  }
  return { request, headers };
}

/** Tensors of a JSON-only inference request. */
export function jsonInputTensors(request: V2InferRequest, headers: ReturnType<typeof parseTensorHeader>[]): TensorMap {
  const inputs: TensorMap = {};
  headers.forEach((h, i) => {
    const raw = request.inputs[i]!;
    if (raw.data === undefined)
      throw invalidInput(`inputs.${h.name}.data: missing (send data, or binary_data_size with the binary extension)`);
    const flat: unknown[] = [];
    flatten(`inputs.${h.name}.data`, raw.data, flat);
    inputs[h.name] = valuesToTensorData(h.name, h.datatype, h.shape, flat);
  });
  return inputs;
}

/**
 * An output tensor as v2 JSON: flat data, BOOL as true/false, 64-bit integers as numbers when exact and as bigints
 * (written with every digit by stringifyExactJson) beyond 2^53.
 */
export function outputTensorJson(name: string, tensor: TensorData): V2OutputTensor {
  const datatype = v2DatatypeOf(tensor.type);
  let data: (number | string | boolean | bigint)[];
  if (tensor.type === 'bool') data = Array.from(tensor.data as Uint8Array, (v) => v !== 0);
  else if (tensor.type === 'int64' || tensor.type === 'uint64') {
    data = Array.from(tensor.data as BigInt64Array, (v) => (v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v));
  } else if (Array.isArray(tensor.data)) data = tensor.data;
  else data = Array.from(tensor.data as Float32Array);
  return { name, datatype, shape: tensor.dims, data };
}
