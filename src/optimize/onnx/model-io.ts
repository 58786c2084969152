import { readFileSync, writeFileSync } from 'node:fs';
import { ModelProtoType, TensorProtoType } from './onnx-schema.ts';
import type { ModelProto, TensorProto } from './onnx-types.ts';

const toObjectOptions = { longs: Number, enums: Number, defaults: false, arrays: false } as const;

export class OnnxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFormatError';
  }
}

/** Decodes ModelProto bytes. Throws OnnxFormatError when the bytes are not a protobuf ModelProto with a graph. */
export function decodeModel(bytes: Uint8Array, source = 'model'): ModelProto {
  let model: ModelProto;
  try {
    model = ModelProtoType.toObject(ModelProtoType.decode(bytes), toObjectOptions) as ModelProto;
  } catch (error) {
    throw new OnnxFormatError(`${source} is not a valid ONNX model: ${(error as Error).message}`);
  }
  if (!model.graph || !model.irVersion) {
    throw new OnnxFormatError(`${source} is not a valid ONNX model: no graph or IR version found`);
  }
  return model;
}

export function encodeModel(model: ModelProto): Uint8Array {
  return ModelProtoType.encode(ModelProtoType.fromObject(model)).finish();
}

export function readModelFile(path: string): ModelProto {
  return decodeModel(readFileSync(path), path);
}

export function writeModelFile(path: string, model: ModelProto): void {
  writeFileSync(path, encodeModel(model));
}

export function decodeTensor(bytes: Uint8Array): TensorProto {
  return TensorProtoType.toObject(TensorProtoType.decode(bytes), toObjectOptions) as TensorProto;
}

export function encodeTensor(tensor: TensorProto): Uint8Array {
  return TensorProtoType.encode(TensorProtoType.fromObject(tensor)).finish();
}
