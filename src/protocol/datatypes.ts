import type { ElementType } from '../runtime/tensor.ts';

/** Open Inference Protocol datatype names ↔ Caliper element types. */
export const V2_DATATYPES = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
} as const satisfies Record<string, ElementType>;

export type V2Datatype = keyof typeof V2_DATATYPES;

const TO_V2 = Object.fromEntries(Object.entries(V2_DATATYPES).map(([v2, t]) => [t, v2])) as Record<
  ElementType,
  V2Datatype
>;

export function isV2Datatype(name: unknown): name is V2Datatype {
  return typeof name === 'string' && Object.hasOwn(V2_DATATYPES, name);
}

export function elementTypeOf(datatype: V2Datatype): ElementType {
  return V2_DATATYPES[datatype];
}

export function v2DatatypeOf(type: ElementType): V2Datatype {
  return TO_V2[type];
}

/** The platform string of the model metadata response. */
export const ONNX_PLATFORM = 'onnxruntime_onnx';
