/*
 * ModelInferResponse and ModelStreamInferResponse written by hand, for the answers the inference path gives
 * (output metadata plus raw_output_contents): sizes first, then one buffer. An answer carrying parameters,
 * typed contents or a non-integer dimension goes through the loader's serializer instead, so every message
 * the interface allows is still encoded.
 */
import { cachedUtf8, delimitedSize, int64Size, ProtoWriter, utf8 } from './proto-writer.ts';
import type { GrpcTensor, ModelInferResponse, ModelStreamInferResponse } from '../../protocol/service-definition.ts';

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

/** Bytes of an optional length-delimited field (left out when empty, as proto3 does). */
function optionalSize(bytes: Uint8Array): number {
  return bytes.byteLength === 0 ? 0 : delimitedSize(bytes.byteLength);
}

function writeOptional(w: ProtoWriter, field: number, bytes: Uint8Array): void {
  if (bytes.byteLength > 0) w.bytes(field, bytes);
}

function shapeBytes(shape: readonly number[]): number {
  let size = 0;
  for (const dim of shape) size += int64Size(dim);
  return size;
}

function tensorSize(tensor: GrpcTensor): number {
  const shape = shapeBytes(tensor.shape);
  return (
    optionalSize(cachedUtf8(tensor.name)) +
    optionalSize(cachedUtf8(tensor.datatype)) +
    (shape === 0 ? 0 : delimitedSize(shape))
  );
}

function responseSize(response: ModelInferResponse, id: Buffer): number {
  let size =
    optionalSize(cachedUtf8(response.model_name)) + optionalSize(cachedUtf8(response.model_version)) + optionalSize(id);
  for (const tensor of response.outputs) size += delimitedSize(tensorSize(tensor));
  for (const raw of response.raw_output_contents ?? []) size += delimitedSize(raw.byteLength);
  return size;
}

function writeResponse(w: ProtoWriter, response: ModelInferResponse, id: Buffer): void {
  writeOptional(w, 1, cachedUtf8(response.model_name));
  writeOptional(w, 2, cachedUtf8(response.model_version));
  writeOptional(w, 3, id);
  for (const tensor of response.outputs) {
    w.delimited(5, tensorSize(tensor));
    writeOptional(w, 1, cachedUtf8(tensor.name));
    writeOptional(w, 2, cachedUtf8(tensor.datatype));
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
    const id = utf8(response.id ?? '');
    const w = new ProtoWriter(responseSize(response, id));
    writeResponse(w, response, id);
    return finished(w);
  };
}

/** The ModelStreamInfer counterpart: error_message = 1, infer_response = 2. */
export function streamResponseSerializer(
  fallback: Serialize<ModelStreamInferResponse>,
): Serialize<ModelStreamInferResponse> {
  return (message) => {
    const inner = message.infer_response;
    if (inner && !plain(inner)) return fallback(message);
    const error = utf8(message.error_message ?? '');
    const id = utf8(inner?.id ?? '');
    const innerSize = inner ? responseSize(inner, id) : 0;
    const w = new ProtoWriter(optionalSize(error) + (inner ? delimitedSize(innerSize) : 0));
    writeOptional(w, 1, error);
    if (inner) {
      w.delimited(2, innerSize);
      writeResponse(w, inner, id);
    }
    return finished(w);
  };
}
