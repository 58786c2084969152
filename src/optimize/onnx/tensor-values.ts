// From the generated descriptor module, not onnx-schema.ts: reading tensor values needs no protobufjs (start-up).
import { TensorProtoDataType as TensorDataType } from './onnx-ml.generated.ts';
import type { TensorProto } from './onnx-types.ts';

/** Element values of a tensor in the typed array ONNX Runtime uses for its element type. */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** ONNX Runtime's type strings (onnxruntime-common Tensor.Type) by ONNX data type. */
export const ORT_TYPE_BY_DATA_TYPE: Readonly<Record<number, string>> = {
  [TensorDataType.FLOAT]: 'float32',
  [TensorDataType.DOUBLE]: 'float64',
  [TensorDataType.FLOAT16]: 'float16',
  [TensorDataType.INT8]: 'int8',
  [TensorDataType.UINT8]: 'uint8',
  [TensorDataType.INT16]: 'int16',
  [TensorDataType.UINT16]: 'uint16',
  [TensorDataType.INT32]: 'int32',
  [TensorDataType.UINT32]: 'uint32',
  [TensorDataType.INT64]: 'int64',
  [TensorDataType.UINT64]: 'uint64',
  [TensorDataType.BOOL]: 'bool',
  [TensorDataType.STRING]: 'string',
};

const BYTES_PER_ELEMENT: Readonly<Record<number, number>> = {
  [TensorDataType.FLOAT]: 4,
  [TensorDataType.DOUBLE]: 8,
  [TensorDataType.FLOAT16]: 2,
  [TensorDataType.BFLOAT16]: 2,
  [TensorDataType.INT8]: 1,
  [TensorDataType.UINT8]: 1,
  [TensorDataType.INT16]: 2,
  [TensorDataType.UINT16]: 2,
  [TensorDataType.INT32]: 4,
  [TensorDataType.UINT32]: 4,
  [TensorDataType.INT64]: 8,
  [TensorDataType.UINT64]: 8,
  [TensorDataType.BOOL]: 1,
};

export function elementCount(dims: readonly number[] | undefined): number {
  return (dims ?? []).reduce((a, b) => a * b, 1);
}

export function bytesPerElement(dataType: number): number | undefined {
  return BYTES_PER_ELEMENT[dataType];
}

/** A fresh, aligned copy (decoded bytes may be a Node Buffer view into a shared pool at any offset). */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}

/** Decodes a tensor's values (raw_data or the typed repeated fields) into ORT's typed array for its type. */
export function tensorValues(tensor: TensorProto): TensorValues {
  const type = tensor.dataType ?? TensorDataType.UNDEFINED;
  const count = elementCount(tensor.dims);
  const raw = tensor.rawData && tensor.rawData.length > 0 ? tensor.rawData : undefined;
  if (tensor.dataLocation === 1 && !raw) {
    throw new Error(`tensor ${tensor.name ?? ''} has external data that was not loaded`);
  }
  switch (type) {
    case TensorDataType.FLOAT:
      return raw ? new Float32Array(alignedCopy(raw)) : Float32Array.from(tensor.floatData ?? []);
    case TensorDataType.DOUBLE:
      return raw ? new Float64Array(alignedCopy(raw)) : Float64Array.from(tensor.doubleData ?? []);
    case TensorDataType.INT64:
      return raw
        ? new BigInt64Array(alignedCopy(raw))
        : BigInt64Array.from((tensor.int64Data ?? []).map((v) => BigInt(v)));
    case TensorDataType.UINT64:
      return raw
        ? new BigUint64Array(alignedCopy(raw))
        : BigUint64Array.from((tensor.uint64Data ?? []).map((v) => BigInt(v)));
    case TensorDataType.UINT32:
      return raw ? new Uint32Array(alignedCopy(raw)) : Uint32Array.from(tensor.uint64Data ?? []);
    case TensorDataType.INT32:
      return raw ? new Int32Array(alignedCopy(raw)) : Int32Array.from(tensor.int32Data ?? []);
    case TensorDataType.INT16:
      return raw ? new Int16Array(alignedCopy(raw)) : Int16Array.from(tensor.int32Data ?? []);
    case TensorDataType.UINT16:
    case TensorDataType.FLOAT16:
    case TensorDataType.BFLOAT16:
      return raw ? new Uint16Array(alignedCopy(raw)) : Uint16Array.from(tensor.int32Data ?? []);
    case TensorDataType.INT8:
      return raw ? new Int8Array(alignedCopy(raw)) : Int8Array.from(tensor.int32Data ?? []);
    case TensorDataType.UINT8:
    case TensorDataType.BOOL:
      return raw ? new Uint8Array(alignedCopy(raw)) : Uint8Array.from(tensor.int32Data ?? []);
    case TensorDataType.STRING:
      return (tensor.stringData ?? []).map((s) => new TextDecoder().decode(s)).slice(0, count || undefined);
    default:
      throw new Error(`tensor ${tensor.name ?? ''}: data type ${type} is not supported`);
  }
}

/** A tensor's values as float32 (for float, double and float16 tensors). */
export function tensorToFloat32(tensor: TensorProto): Float32Array {
  const values = tensorValues(tensor);
  if (values instanceof Float32Array) return values;
  if (tensor.dataType === TensorDataType.FLOAT16 && values instanceof Uint16Array) return float16BitsToFloat32(values);
  if (values instanceof Float64Array) return Float32Array.from(values);
  throw new Error(`tensor ${tensor.name ?? ''} is not a floating-point tensor (data type ${tensor.dataType})`);
}

/** Moves a tensor's typed fields into raw_data (little-endian), the form external data and size accounting need. */
export function withRawData(tensor: TensorProto): TensorProto {
  if ((tensor.rawData && tensor.rawData.length > 0) || tensor.dataType === TensorDataType.STRING) return tensor;
  const values = tensorValues(tensor);
  if (Array.isArray(values)) return tensor;
  const { floatData, int32Data, int64Data, doubleData, uint64Data, ...rest } = tensor;
  void floatData;
  void int32Data;
  void int64Data;
  void doubleData;
  void uint64Data;
  return { ...rest, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice() };
}

/** Bytes a tensor's data occupies. */
export function tensorByteLength(tensor: TensorProto): number {
  if (tensor.rawData && tensor.rawData.length > 0) return tensor.rawData.length;
  const width = bytesPerElement(tensor.dataType ?? 0);
  if (width !== undefined) return width * elementCount(tensor.dims);
  return (tensor.stringData ?? []).reduce((a, s) => a + s.length, 0);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE float32 → float16 bits, round to nearest even, overflow to ±inf, NaN kept. */
export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!;
    const x = u32[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mantissa |= 0x800000;
      const shift = 14 - e;
      let half = mantissa >>> shift;
      const remainder = mantissa & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (remainder > halfway || (remainder === halfway && half & 1)) half++;
      out[i] = sign | half;
    } else {
      let half = (e << 10) | (mantissa >>> 13);
      const remainder = mantissa & 0x1fff;
      if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++;
      out[i] = sign | half;
    }
  }
  return out;
}

export function float16BitsToFloat32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) out[i] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) out[i] = mantissa ? NaN : sign * Infinity;
    else out[i] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return out;
}
