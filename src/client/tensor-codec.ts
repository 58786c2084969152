import { elementCount, typedArrayOf, type TensorData } from '../runtime/tensor.ts';
import { elementTypeOf, isV2Datatype } from '../protocol/datatypes.ts';
import { encodeBytesElements, rawTensorBytes, tensorFromRawBytes } from '../protocol/binary-tensors.ts';
import { InferenceClientError } from './client-error.ts';
import type { InferInput, InferOutput, TensorDatatype, TensorValues } from './infer-types.ts';

const invalid = (message: string): InferenceClientError =>
  new InferenceClientError(message, { code: 'CALIPER_INVALID_INPUT', retryable: false });

/** The input's elements as the typed array of its datatype (the same array when it already is one). */
export function typedInput(input: InferInput): TensorData {
  const count = elementCount(input.shape);
  if (input.data.length !== count)
    throw invalid(
      `inputs.${input.name}: shape [${input.shape.join(', ')}] needs ${count} values, got ${input.data.length}`,
    );
  const type = elementTypeOf(input.datatype);
  if (type === 'string') {
    if (!(input.data as unknown[]).every((v) => typeof v === 'string'))
      throw invalid(`inputs.${input.name}: BYTES data must be strings`);
    return { type, dims: input.shape, data: input.data as string[] };
  }
  const out = typedArrayOf(type, count);
  if (out.constructor === input.data.constructor) return { type, dims: input.shape, data: input.data as typeof out };
  const big = type === 'int64' || type === 'uint64';
  for (let i = 0; i < count; i++) {
    const v = input.data[i];
    if (typeof v === 'string') throw invalid(`inputs.${input.name}[${i}]: a string in a ${input.datatype} tensor`);
    (out as unknown as unknown[])[i] = big ? BigInt(v as number | bigint) : Number(v);
  }
  return { type, dims: input.shape, data: out };
}

export function inputBytes(input: InferInput): Uint8Array {
  const tensor = typedInput(input);
  return tensor.type === 'string' ? encodeBytesElements(tensor.data as string[]) : rawTensorBytes(tensor);
}

/** JSON `data` for the v2 REST JSON form: numbers, booleans or strings; 64-bit integers as bigints (written exactly). */
export function jsonData(input: InferInput): (number | bigint | boolean | string)[] {
  const tensor = typedInput(input);
  if (tensor.type === 'bool') return Array.from(tensor.data as Uint8Array, (v) => v !== 0);
  if (tensor.type === 'string') return tensor.data as string[];
  if (tensor.type === 'int64' || tensor.type === 'uint64') return Array.from(tensor.data as BigInt64Array);
  return Array.from(tensor.data as ArrayLike<number | bigint>, (v) => Number(v));
}

function datatypeOf(name: string, datatype: string): TensorDatatype {
  if (!isV2Datatype(datatype))
    throw new InferenceClientError(`outputs.${name}: the server sent unknown datatype "${datatype}"`, {
      retryable: false,
    });
  return datatype;
}

export function outputFromRaw(name: string, datatype: string, shape: number[], bytes: Uint8Array): InferOutput {
  const type = datatypeOf(name, datatype);
  const tensor = tensorFromRawBytes(`outputs.${name}`, type, shape, bytes);
  return { name, datatype: type, shape, data: tensor.data as InferOutput['data'] };
}

/** An output given as JSON values (REST JSON, or gRPC typed contents). */
export function outputFromValues(
  name: string,
  datatype: string,
  shape: number[],
  values: readonly unknown[],
): InferOutput {
  const type = datatypeOf(name, datatype);
  const element = elementTypeOf(type);
  if (element === 'string')
    return {
      name,
      datatype: type,
      shape,
      data: values.map((v) => (typeof v === 'string' ? v : new TextDecoder().decode(v as Uint8Array))),
    };
  const data = typedArrayOf(element, values.length);
  const big = element === 'int64' || element === 'uint64';
  values.forEach((v, i) => {
    // JSON writes NaN and ±Infinity as null: a null number reads back as NaN, never as 0.
    (data as unknown as unknown[])[i] = big
      ? BigInt(v as number)
      : typeof v === 'boolean'
        ? v
          ? 1
          : 0
        : v === null
          ? NaN
          : Number(v);
  });
  return { name, datatype: type, shape, data: data as InferOutput['data'] };
}

export type { TensorValues };
