/** Tensors as Caliper moves them between stages and threads: an element type, dims and a flat typed array. */

export type ElementType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

export interface TensorData {
  type: ElementType;
  dims: number[];
  data: TensorValues;
}

export type TensorMap = Record<string, TensorData>;

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

const ARRAY_TYPES: Record<Exclude<ElementType, 'string'>, TypedArrayConstructor> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Allocates a zero tensor of the given type and dims. */
export function zeroTensor(type: ElementType, dims: number[]): TensorData {
  const count = elementCount(dims);
  if (type === 'string') return { type, dims, data: new Array<string>(count).fill('') };
  return { type, dims, data: new ARRAY_TYPES[type](count) };
}

/** Bytes per element, or undefined for strings. */
export function bytesPerElement(type: ElementType): number | undefined {
  return type === 'string' ? undefined : ARRAY_TYPES[type].BYTES_PER_ELEMENT;
}

/** A typed array of the element type over a copy of raw little-endian bytes. */
export function typedArrayFromBytes(
  type: Exclude<ElementType, 'string'>,
  bytes: Uint8Array,
): Exclude<TensorValues, string[]> {
  const Ctor = ARRAY_TYPES[type];
  // Unpooled (its buffer may be transferred to a worker) and not zero-filled: every byte is copied over at once.
  const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, copy.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
}

export function typedArrayOf(type: Exclude<ElementType, 'string'>, length: number): Exclude<TensorValues, string[]> {
  return new ARRAY_TYPES[type](length);
}

/** A typed array of the element type over the first `length` elements of `buffer` (no copy). */
export function typedArrayOver(
  type: Exclude<ElementType, 'string'>,
  buffer: ArrayBuffer,
  length: number,
): Exclude<TensorValues, string[]> {
  return new ARRAY_TYPES[type](buffer, 0, length);
}

/** Concatenates tensors along dim 0 (they must agree on type and the other dims). */
export function concatRows(parts: readonly TensorData[]): TensorData {
  if (parts.length === 1) return parts[0]!;
  const first = parts[0]!;
  const rows = parts.reduce((sum, p) => sum + (p.dims[0] ?? 1), 0);
  const dims = [rows, ...first.dims.slice(1)];
  if (first.type === 'string') {
    return { type: first.type, dims, data: parts.flatMap((p) => p.data as string[]) };
  }
  const out = typedArrayOf(first.type, elementCount(dims));
  let offset = 0;
  for (const part of parts) {
    (out as Float32Array).set(part.data as Float32Array, offset);
    offset += part.data.length;
  }
  return { type: first.type, dims, data: out };
}

/** Rows [start, start + count) of a tensor, as a view where possible. */
export function sliceRows(tensor: TensorData, start: number, count: number): TensorData {
  // One new dims array per slice (a batch's outputs are sliced once per request).
  const dims = tensor.dims.slice();
  dims[0] = count;
  let rowSize = 1;
  for (let i = 1; i < dims.length; i++) rowSize *= dims[i]!;
  const data = Array.isArray(tensor.data)
    ? tensor.data.slice(start * rowSize, (start + count) * rowSize)
    : (tensor.data as Float32Array).subarray(start * rowSize, (start + count) * rowSize);
  return { type: tensor.type, dims, data };
}
