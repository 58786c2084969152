/**
 * Raw tensor bytes as the Open Inference Protocol carries them — the REST binary tensor extension and
 * gRPC raw_input_contents / raw_output_contents: elements little-endian and densely packed, BOOL one byte
 * each, BYTES each prefixed by its length as a 4-byte little-endian unsigned integer.
 * (Typed arrays use the platform's byte order; every platform Node.js ships for is little-endian.)
 */
import { describeValue } from '../config/config-reader.ts';
import { CaliperError, invalidInput } from '../errors.ts';
import { textOfBytes } from '../runtime/string-elements.ts';
import {
  bytesPerElement,
  elementCount,
  typedArrayFromBytes,
  type TensorData,
  type TensorMap,
} from '../runtime/tensor.ts';
import { elementTypeOf, v2DatatypeOf, type V2Datatype } from './datatypes.ts';
import {
  jsonInputTensors,
  outputTensorJson,
  parseInferRequest,
  type V2InferRequest,
  type V2OutputTensor,
} from './json-tensors.ts';
import { parseExactJson, stringifyExactJson } from '../runtime/exact-json.ts';

export const BINARY_HEADER_LENGTH = 'inference-header-content-length';
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

const utf8Encoder = new TextEncoder();

/** BYTES elements, each as a 4-byte little-endian length then its UTF-8 bytes. */
export function encodeBytesElements(values: readonly string[]): Uint8Array {
  const encoded = values.map((v) => utf8Encoder.encode(v));
  const out = new Uint8Array(encoded.reduce((sum, e) => sum + 4 + e.byteLength, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const e of encoded) {
    view.setUint32(offset, e.byteLength, true);
    out.set(e, offset + 4);
    offset += 4 + e.byteLength;
  }
  return out;
}

/** Splits length-prefixed BYTES elements; the bytes must hold exactly `count` of them. */
export function decodeBytesElements(where: string, bytes: Uint8Array, count: number): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: string[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    if (offset + 4 > bytes.byteLength)
      throw invalidInput(
        `${where}: BYTES element ${values.length} has a truncated 4-byte length prefix at byte ${offset}`,
      );
    const length = view.getUint32(offset, true);
    if (offset + 4 + length > bytes.byteLength) {
      throw invalidInput(
        `${where}: BYTES element ${values.length} declares ${length} bytes at byte ${offset} but only ${bytes.byteLength - offset - 4} remain`,
      );
    }
    values.push(
      textOfBytes(`${where}: BYTES element ${values.length}`, bytes.subarray(offset + 4, offset + 4 + length)),
    );
    offset += 4 + length;
  }
  if (values.length !== count)
    throw invalidInput(`${where}: expected ${count} BYTES elements for the shape, got ${values.length}`);
  return values;
}

/** The raw bytes of a tensor (a view over its storage where possible). */
export function rawTensorBytes(tensor: TensorData): Uint8Array {
  if (tensor.type === 'string') return encodeBytesElements(tensor.data as string[]);
  const data = tensor.data as Exclude<TensorData['data'], string[]>;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Builds a tensor from raw bytes, checking the byte count against shape × datatype. */
export function tensorFromRawBytes(
  where: string,
  datatype: V2Datatype,
  shape: number[],
  bytes: Uint8Array,
): TensorData {
  const type = elementTypeOf(datatype);
  const count = elementCount(shape);
  if (type === 'string') return { type, dims: shape, data: decodeBytesElements(where, bytes, count) };
  const size = bytesPerElement(type)!;
  if (bytes.byteLength !== count * size) {
    throw invalidInput(
      `${where}: shape [${shape.join(', ')}] of ${datatype} needs ${count * size} bytes (${count} × ${size}), got ${bytes.byteLength}`,
    );
  }
  return { type, dims: shape, data: typedArrayFromBytes(type, bytes) };
}

/** Reads a non-negative integer parameter such as binary_data_size. */
function byteCount(where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalidInput(`${where}: expected a non-negative integer byte count, got ${describeValue(value)}`);
  return value;
}

/** Splits a binary-extension body into its JSON header and the binary tensor data after it. */
export function splitBinaryBody(body: Buffer, headerLength: string | undefined): { header: unknown; binary: Buffer } {
  let jsonLength = body.byteLength;
  if (headerLength !== undefined) {
    if (!/^[0-9]+$/.test(headerLength))
      throw new CaliperError(
        'CALIPER_MALFORMED_BODY',
        `Inference-Header-Content-Length: expected a byte count, got "${headerLength}"`,
      );
    jsonLength = Number(headerLength);
    if (jsonLength > body.byteLength) {
      throw new CaliperError(
        'CALIPER_MALFORMED_BODY',
        `Inference-Header-Content-Length: ${jsonLength} is past the end of the ${body.byteLength}-byte body`,
      );
    }
  }
  let header: unknown;
  try {
    header = parseExactJson(body.toString('utf8', 0, jsonLength));
  } catch (error) {
    throw new CaliperError(
      'CALIPER_MALFORMED_BODY',
      `body: the first ${jsonLength} bytes (Inference-Header-Content-Length) are not a JSON inference request (${(error as Error).message})`,
    );
  }
  return { header, binary: body.subarray(jsonLength) };
}

/** Tensors of a request that may mix JSON `data` and binary inputs (parameters.binary_data_size). */
export function binaryInputTensors(
  request: V2InferRequest,
  headers: ReturnType<typeof parseInferRequest>['headers'],
  binary: Uint8Array,
): TensorMap {
  const inputs: TensorMap = {};
  let offset = 0;
  headers.forEach((h, i) => {
    const raw = request.inputs[i]!;
    const declared = raw.parameters?.binary_data_size;
    if (declared === undefined) {
      Object.assign(inputs, jsonInputTensors({ inputs: [raw] }, [h]));
      return;
    }
    if (raw.data !== undefined)
      throw invalidInput(`inputs.${h.name}: has both data and parameters.binary_data_size (send one)`);
    const size = byteCount(`inputs.${h.name}.parameters.binary_data_size`, declared);
    if (offset + size > binary.byteLength) {
      throw invalidInput(
        `inputs.${h.name}.parameters.binary_data_size: ${size} bytes from binary offset ${offset} run past the ${binary.byteLength} bytes of binary data after the JSON header`,
      );
    }
    inputs[h.name] = tensorFromRawBytes(
      `inputs.${h.name} binary data`,
      h.datatype,
      h.shape,
      binary.subarray(offset, offset + size),
    );
    offset += size;
  });
  if (offset !== binary.byteLength) {
    throw invalidInput(
      `body: ${binary.byteLength - offset} bytes of binary data are left over after the inputs' binary_data_size (${offset} bytes)`,
    );
  }
  return inputs;
}

/** Parses an infer body: a JSON object, or a Buffer under the binary extension. */
export function decodeInferBody(
  body: unknown,
  headerLength: string | string[] | undefined,
): { request: V2InferRequest; inputs: TensorMap } {
  if (Array.isArray(headerLength))
    throw new CaliperError('CALIPER_MALFORMED_BODY', 'Inference-Header-Content-Length: given more than once');
  if (!Buffer.isBuffer(body)) {
    const { request, headers } = parseInferRequest(body);
    return { request, inputs: jsonInputTensors(request, headers) };
  }
  const { header, binary } = splitBinaryBody(body, headerLength);
  const { request, headers } = parseInferRequest(header);
  return { request, inputs: binaryInputTensors(request, headers, binary) };
}

/** Whether an output is asked for as binary: its own binary_data parameter, else the request's binary_data_output. */
export function wantsBinaryOutput(request: V2InferRequest, name: string): boolean {
  const own = request.outputs?.find((o) => o.name === name)?.parameters?.binary_data;
  if (own !== undefined) {
    if (typeof own !== 'boolean')
      throw invalidInput(`outputs.${name}.parameters.binary_data: expected true or false, got ${describeValue(own)}`);
    return own;
  }
  const all = request.parameters?.binary_data_output;
  if (all !== undefined && typeof all !== 'boolean')
    throw invalidInput(`parameters.binary_data_output: expected true or false, got ${describeValue(all)}`);
  return all === true;
}

export interface InferResponseBody {
  /** JSON when no output is binary, else the JSON header followed by the binary outputs. */
  body: string | Buffer;
  /** Set when the body carries binary outputs: the JSON header's length in bytes. */
  headerLength?: number;
}

/** Renders the response: outputs asked for as binary go after the JSON header, with binary_data_size. */
export function encodeInferResponse(
  head: { model_name: string; model_version: string; id?: string },
  request: V2InferRequest,
  outputs: TensorMap,
  names: string[],
): InferResponseBody {
  const raws: Uint8Array[] = [];
  const tensors: V2OutputTensor[] = names.map((name) => {
    const tensor = outputs[name]!;
    if (!wantsBinaryOutput(request, name)) return outputTensorJson(name, tensor);
    const raw = rawTensorBytes(tensor);
    raws.push(raw);
    return {
      name,
      datatype: v2DatatypeOf(tensor.type),
      shape: tensor.dims,
      parameters: { binary_data_size: raw.byteLength },
    };
  });
  const json = stringifyExactJson({ ...head, outputs: tensors });
  if (raws.length === 0) return { body: json };
  const header = Buffer.from(json, 'utf8');
  return { body: Buffer.concat([header, ...raws]), headerLength: header.byteLength };
}
