/*
 * ModelInferResponse and ModelStreamInferResponse written by hand, for the answers the inference path gives
 * (output metadata plus raw_output_contents): sizes first, then one buffer. An answer carrying parameters,
 * typed contents or a non-integer dimension goes through the loader's serializer instead, so every message
 * the interface allows is still encoded.
 */
import { delimitedSize, int64Size, ProtoWriter, utf8Length } from './proto-writer.ts';
import type { GrpcTensor, ModelInferResponse, ModelStreamInferResponse } from './service-definition.ts';

export type Serialize<T> = (message: T) => Buffer;

function isEmpty(record: object | undefined | null): boolean {
  if (!record) return true;
  for (const _ in record) return false;
  return true;
}

/** Whether the fast path encodes `response` (no parameters, no typed contents, integer dimensions). */
function plain(response: ModelInferResponse): boolean {
  if (!isEmpty(response.parameters)) return false;
  for (const tensor of response.outputs) {
    if (!isEmpty(tensor.parameters) || tensor.contents) return false;
    for (const dim of tensor.shape) if (!Number.isSafeInteger(dim)) return false;
  }
  return true;
}

function stringFieldSize(length: number): number {
  return length === 0 ? 0 : delimitedSize(length);
}

function shapeBytes(shape: readonly number[]): number {
  let size = 0;
  for (const dim of shape) size += int64Size(dim);
  return size;
}

function tensorSize(tensor: GrpcTensor): number {
  const shape = shapeBytes(tensor.shape);
  return stringFieldSize(utf8Length(tensor.name)) + stringFieldSize(utf8Length(tensor.datatype)) + (shape === 0 ? 0 : delimitedSize(shape));
}

function responseSize(response: ModelInferResponse): number {
  let size = stringFieldSize(utf8Length(response.model_name)) + stringFieldSize(utf8Length(response.model_version)) + stringFieldSize(utf8Length(response.id ?? ''));
  for (const tensor of response.outputs) size += delimitedSize(tensorSize(tensor));
  for (const raw of response.raw_output_contents ?? []) size += delimitedSize(raw.byteLength);
  return size;
}

function writeString(w: ProtoWriter, field: number, value: string): void {
  const length = utf8Length(value);
  if (length > 0) w.string(field, value, length);
}

function writeResponse(w: ProtoWriter, response: ModelInferResponse): void {
  writeString(w, 1, response.model_name);
  writeString(w, 2, response.model_version);
  writeString(w, 3, response.id ?? '');
  for (const tensor of response.outputs) {
    w.delimited(5, tensorSize(tensor));
    writeString(w, 1, tensor.name);
    writeString(w, 2, tensor.datatype);
    const shape = shapeBytes(tensor.shape);
    if (shape > 0) {
      w.delimited(3, shape);
      for (const dim of tensor.shape) w.int64(dim);
    }
  }
  for (const raw of response.raw_output_contents ?? []) w.bytes(6, raw);
}

function finished(w: ProtoWriter): Buffer {
  if (w.pos !== w.buf.byteLength) throw new Error(`response encoder wrote ${w.pos} of ${w.buf.byteLength} bytes`);
  return w.buf;
}

/** A ModelInfer response serializer; `fallback` (the loader's) takes the answers the fast path does not cover. */
export function inferResponseSerializer(fallback: Serialize<ModelInferResponse>): Serialize<ModelInferResponse> {
  return (response) => {
    if (!plain(response)) return fallback(response);
    const w = new ProtoWriter(responseSize(response));
    writeResponse(w, response);
    return finished(w);
  };
}

/** The ModelStreamInfer counterpart: error_message = 1, infer_response = 2. */
export function streamResponseSerializer(fallback: Serialize<ModelStreamInferResponse>): Serialize<ModelStreamInferResponse> {
  return (message) => {
    const inner = message.infer_response;
    if (inner && !plain(inner)) return fallback(message);
    const errorLength = utf8Length(message.error_message ?? '');
    const innerSize = inner ? responseSize(inner) : 0;
    const w = new ProtoWriter(stringFieldSize(errorLength) + (inner ? delimitedSize(innerSize) : 0));
    if (errorLength > 0) w.string(1, message.error_message!, errorLength);
    if (inner) {
      w.delimited(2, innerSize);
      writeResponse(w, inner);
    }
    return finished(w);
  };
}
