/*
 * Plain-object shapes of the ONNX messages as model-io reads and writes them (int64 and enums as numbers, bytes as
 * Uint8Array), generated from the official onnx-ml.proto (scripts/generate-onnx-schema.ts). The short names below
 * are the ones the optimize/ code uses.
 */
export type {
  AttributeProto,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  SparseTensorProto,
  TensorAnnotation,
  TensorProto,
  TensorShapeProto,
  TrainingInfoProto,
  TypeProto,
  ValueInfoProto,
} from './onnx-ml.generated.ts';
import type { OperatorSetIdProto, StringStringEntryProto, TensorShapeProtoDimension } from './onnx-ml.generated.ts';

export type StringStringEntry = StringStringEntryProto;
export type OperatorSetId = OperatorSetIdProto;
export type TensorShapeDimension = TensorShapeProtoDimension;
