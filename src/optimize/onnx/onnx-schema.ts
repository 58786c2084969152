import protobuf from 'protobufjs';
import { AttributeProtoAttributeType, onnxMlDescriptor, TensorProtoDataType } from './onnx-ml.generated.ts';

/*
 * The ONNX protobuf messages as a protobufjs reflection tree, built from the descriptor that
 * scripts/generate-onnx-schema.ts generates from the official onnx-ml.proto (ONNX 1.17, IR version 10).
 * Field names are protobufjs' camelCase; the plain-object shapes are in onnx-types.ts.
 */

export const onnxRoot = protobuf.Root.fromJSON(onnxMlDescriptor as protobuf.INamespace);

export const ModelProtoType = onnxRoot.lookupType('onnx.ModelProto');
export const TensorProtoType = onnxRoot.lookupType('onnx.TensorProto');

/** TensorProto.DataType values. */
export const TensorDataType = TensorProtoDataType;
export type TensorDataTypeCode = (typeof TensorDataType)[keyof typeof TensorDataType];

/** AttributeProto.AttributeType values. */
export const AttributeType = AttributeProtoAttributeType;
