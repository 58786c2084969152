import { readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CaliperError } from '../../errors.ts';
import { externalizeInitializers, loadExternalData, type ExternalDataOptions } from './external-data.ts';
import { ModelProtoType, TensorProtoType } from './onnx-schema.ts';
import type { ModelProto, TensorProto } from './onnx-types.ts';

const toObjectOptions = { longs: Number, enums: Number, defaults: false, arrays: false } as const;

/** Bytes that are not an ONNX ModelProto with a graph (CALIPER_ONNX_INVALID). */
export class OnnxFormatError extends CaliperError {
  constructor(message: string) {
    super('CALIPER_ONNX_INVALID', message);
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

export interface ReadModelOptions {
  /** Read tensors stored in external data files into raw_data (default true). */
  loadExternalData?: boolean;
}

/** Reads a .onnx file; external data is resolved relative to the model's directory. */
export function readModelFile(path: string, options: ReadModelOptions = {}): ModelProto {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new OnnxFormatError(`cannot read ${path}: ${(error as Error).message}`);
  }
  const model = decodeModel(bytes, path);
  if (options.loadExternalData ?? true) loadExternalData(model, dirname(path));
  return model;
}

export interface WriteModelOptions {
  /** Store initializers of at least `thresholdBytes` in an external data file next to the model. */
  externalData?: ExternalDataOptions | boolean;
}

export function writeModelFile(path: string, model: ModelProto, options: WriteModelOptions = {}): void {
  const { externalData } = options;
  const toWrite = externalData
    ? externalizeInitializers(model, path, externalData === true ? {} : externalData)
    : model;
  writeFileSync(path, encodeModel(toWrite));
}

export function decodeTensor(bytes: Uint8Array): TensorProto {
  return TensorProtoType.toObject(TensorProtoType.decode(bytes), toObjectOptions) as TensorProto;
}

export function encodeTensor(tensor: TensorProto): Uint8Array {
  return TensorProtoType.encode(TensorProtoType.fromObject(tensor)).finish();
}
