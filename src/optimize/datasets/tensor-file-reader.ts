import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeTensor } from '../onnx/model-io.ts';
import { tensorValues } from '../onnx/tensor-values.ts';
import { DatasetError } from './dataset-error.ts';
import type { Dataset } from './dataset-shape.ts';

/** ONNX TensorProto .pb file(s) as a data set; the first dimension is the sample axis. */
export function readTensorDataset(path: string): Dataset {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => /^input_\d+\.pb$/.test(f))
        .sort()
        .map((f) => join(path, f))
    : [path];
  if (files.length === 0) throw new DatasetError(`${path} holds no input_N.pb tensor files`);
  const parts: Float32Array[] = [];
  let featureShape: number[] | undefined;
  let count = 0;
  for (const file of files) {
    let dims: number[];
    let values: ArrayLike<number | bigint>;
    try {
      const tensor = decodeTensor(readFileSync(file));
      dims = tensor.dims ?? [];
      values = tensorValues(tensor) as ArrayLike<number | bigint>;
    } catch (error) {
      throw new DatasetError(`${file} is not an ONNX TensorProto: ${(error as Error).message}`);
    }
    if (dims.length === 0) throw new DatasetError(`${file}: a scalar tensor has no sample axis`);
    const shape = dims.slice(1);
    if (featureShape && shape.join() !== featureShape.join()) {
      throw new DatasetError(`${file}: sample shape [${shape}] differs from [${featureShape}] in the other files`);
    }
    featureShape = shape;
    parts.push(Float32Array.from(values as ArrayLike<number>, Number));
    count += dims[0]!;
  }
  const features = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    features.set(part, offset);
    offset += part.length;
  }
  return { source: path, features, featureShape: featureShape!, count };
}
