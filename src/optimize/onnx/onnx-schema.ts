import protobuf from 'protobufjs';

/*
 * The ONNX protobuf messages (onnx.proto, proto2) as a protobufjs reflection tree. Field names and numbers
 * follow the published ONNX IR specification; camelCase names are protobufjs' JSON conventions.
 */

type Fields = Record<string, { type: string; id: number; rule?: 'repeated'; options?: Record<string, boolean> }>;

const repeated = (type: string, id: number, packed = false) => ({
  type,
  id,
  rule: 'repeated' as const,
  ...(packed ? { options: { packed: true } } : { options: { packed: false } }),
});

const messages: Record<string, { fields: Fields; nested?: Record<string, unknown> }> = {
  StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
  OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
  TensorAnnotation: {
    fields: { tensorName: { type: 'string', id: 1 }, quantParameterTensorNames: repeated('StringStringEntryProto', 2) },
  },
  AttributeProto: {
    fields: {
      name: { type: 'string', id: 1 },
      refAttrName: { type: 'string', id: 21 },
      docString: { type: 'string', id: 13 },
      type: { type: 'AttributeType', id: 20 },
      f: { type: 'float', id: 2 },
      i: { type: 'int64', id: 3 },
      s: { type: 'bytes', id: 4 },
      t: { type: 'TensorProto', id: 5 },
      g: { type: 'GraphProto', id: 6 },
      sparseTensor: { type: 'SparseTensorProto', id: 22 },
      tp: { type: 'TypeProto', id: 14 },
      floats: repeated('float', 7),
      ints: repeated('int64', 8),
      strings: repeated('bytes', 9),
      tensors: repeated('TensorProto', 10),
      graphs: repeated('GraphProto', 11),
      sparseTensors: repeated('SparseTensorProto', 23),
      typeProtos: repeated('TypeProto', 15),
    },
  },
  ValueInfoProto: {
    fields: {
      name: { type: 'string', id: 1 },
      type: { type: 'TypeProto', id: 2 },
      docString: { type: 'string', id: 3 },
      metadataProps: repeated('StringStringEntryProto', 4),
    },
  },
  NodeProto: {
    fields: {
      input: repeated('string', 1),
      output: repeated('string', 2),
      name: { type: 'string', id: 3 },
      opType: { type: 'string', id: 4 },
      domain: { type: 'string', id: 7 },
      overload: { type: 'string', id: 8 },
      attribute: repeated('AttributeProto', 5),
      docString: { type: 'string', id: 6 },
      metadataProps: repeated('StringStringEntryProto', 9),
    },
  },
  TrainingInfoProto: {
    fields: {
      initialization: { type: 'GraphProto', id: 1 },
      algorithm: { type: 'GraphProto', id: 2 },
      initializationBinding: repeated('StringStringEntryProto', 3),
      updateBinding: repeated('StringStringEntryProto', 4),
    },
  },
  ModelProto: {
    fields: {
      irVersion: { type: 'int64', id: 1 },
      opsetImport: repeated('OperatorSetIdProto', 8),
      producerName: { type: 'string', id: 2 },
      producerVersion: { type: 'string', id: 3 },
      domain: { type: 'string', id: 4 },
      modelVersion: { type: 'int64', id: 5 },
      docString: { type: 'string', id: 6 },
      graph: { type: 'GraphProto', id: 7 },
      metadataProps: repeated('StringStringEntryProto', 14),
      trainingInfo: repeated('TrainingInfoProto', 20),
      functions: repeated('FunctionProto', 25),
    },
  },
  GraphProto: {
    fields: {
      node: repeated('NodeProto', 1),
      name: { type: 'string', id: 2 },
      initializer: repeated('TensorProto', 5),
      sparseInitializer: repeated('SparseTensorProto', 15),
      docString: { type: 'string', id: 10 },
      input: repeated('ValueInfoProto', 11),
      output: repeated('ValueInfoProto', 12),
      valueInfo: repeated('ValueInfoProto', 13),
      quantizationAnnotation: repeated('TensorAnnotation', 14),
      metadataProps: repeated('StringStringEntryProto', 16),
    },
  },
  TensorProto: {
    fields: {
      dims: repeated('int64', 1),
      dataType: { type: 'int32', id: 2 },
      segment: { type: 'Segment', id: 3 },
      floatData: repeated('float', 4, true),
      int32Data: repeated('int32', 5, true),
      stringData: repeated('bytes', 6),
      int64Data: repeated('int64', 7, true),
      name: { type: 'string', id: 8 },
      docString: { type: 'string', id: 12 },
      rawData: { type: 'bytes', id: 9 },
      externalData: repeated('StringStringEntryProto', 13),
      dataLocation: { type: 'DataLocation', id: 14 },
      doubleData: repeated('double', 10, true),
      uint64Data: repeated('uint64', 11, true),
      metadataProps: repeated('StringStringEntryProto', 16),
    },
    nested: {
      Segment: { fields: { begin: { type: 'int64', id: 1 }, end: { type: 'int64', id: 2 } } },
      DataLocation: { values: { DEFAULT: 0, EXTERNAL: 1 } },
    },
  },
  SparseTensorProto: {
    fields: {
      values: { type: 'TensorProto', id: 1 },
      indices: { type: 'TensorProto', id: 2 },
      dims: repeated('int64', 3),
    },
  },
  TensorShapeProto: {
    fields: { dim: repeated('Dimension', 1) },
    nested: {
      Dimension: {
        oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
        fields: {
          dimValue: { type: 'int64', id: 1 },
          dimParam: { type: 'string', id: 2 },
          denotation: { type: 'string', id: 3 },
        },
      },
    },
  },
  TypeProto: {
    fields: {
      tensorType: { type: 'Tensor', id: 1 },
      sequenceType: { type: 'Sequence', id: 4 },
      mapType: { type: 'Map', id: 5 },
      optionalType: { type: 'Optional', id: 9 },
      sparseTensorType: { type: 'SparseTensor', id: 8 },
      denotation: { type: 'string', id: 6 },
    },
    nested: {
      Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
      Sequence: { fields: { elemType: { type: 'TypeProto', id: 1 } } },
      Map: { fields: { keyType: { type: 'int32', id: 1 }, valueType: { type: 'TypeProto', id: 2 } } },
      Optional: { fields: { elemType: { type: 'TypeProto', id: 1 } } },
      SparseTensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
    },
  },
  FunctionProto: {
    fields: {
      name: { type: 'string', id: 1 },
      input: repeated('string', 4),
      output: repeated('string', 5),
      attribute: repeated('string', 6),
      attributeProto: repeated('AttributeProto', 11),
      node: repeated('NodeProto', 7),
      docString: { type: 'string', id: 8 },
      opsetImport: repeated('OperatorSetIdProto', 9),
      domain: { type: 'string', id: 10 },
      overload: { type: 'string', id: 13 },
      valueInfo: repeated('ValueInfoProto', 12),
      metadataProps: repeated('StringStringEntryProto', 14),
    },
  },
};

const enums = {
  AttributeType: {
    values: {
      UNDEFINED: 0,
      FLOAT: 1,
      INT: 2,
      STRING: 3,
      TENSOR: 4,
      GRAPH: 5,
      SPARSE_TENSOR: 11,
      TYPE_PROTO: 13,
      FLOATS: 6,
      INTS: 7,
      STRINGS: 8,
      TENSORS: 9,
      GRAPHS: 10,
      SPARSE_TENSORS: 12,
      TYPE_PROTOS: 14,
    },
  },
};

export const onnxRoot = protobuf.Root.fromJSON({
  options: { syntax: 'proto2' },
  nested: { onnx: { nested: { ...messages, ...enums } } },
} as protobuf.INamespace);

export const ModelProtoType = onnxRoot.lookupType('onnx.ModelProto');
export const TensorProtoType = onnxRoot.lookupType('onnx.TensorProto');

/** TensorProto.DataType values. */
export const TensorDataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
} as const;
export type TensorDataTypeCode = (typeof TensorDataType)[keyof typeof TensorDataType];

/** AttributeProto.AttributeType values. */
export const AttributeType = enums.AttributeType.values;
