import ort from 'onnxruntime-node';
import type { TensorProto } from './onnx-types.ts';
import { ORT_TYPE_BY_DATA_TYPE, float16BitsToFloat32, tensorValues } from './tensor-values.ts';
import { disableOrtTelemetryUnlessAsked } from '../../runtime/ort-telemetry.ts';

// Library users (bench scripts, programs importing Caliper's optimizers) skip the CLI, which sets this first: ORT reads
// it when the process's first session is created.
disableOrtTelemetryUnlessAsked();

export type OrtSession = ort.InferenceSession;
export type OrtTensor = ort.Tensor;
export type OrtFeeds = Record<string, ort.Tensor>;

export interface SessionOptions {
  intraOpNumThreads?: number;
  /** ORT graph optimizations (default 'all', which is where quantization patterns get fused). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

/** Opens an ONNX Runtime CPU session on model bytes, one inter-op thread, warnings silenced. */
export async function openSession(model: Uint8Array, options: SessionOptions = {}): Promise<OrtSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: options.intraOpNumThreads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: options.optimization ?? 'all',
    logSeverityLevel: 4,
  });
}

/** An ORT tensor holding a TensorProto's values. */
export function ortTensorFromProto(tensor: TensorProto): ort.Tensor {
  const type = ORT_TYPE_BY_DATA_TYPE[tensor.dataType ?? 0];
  if (!type)
    throw new Error(`tensor ${tensor.name ?? ''}: data type ${tensor.dataType} has no ONNX Runtime equivalent`);
  const values = tensorValues(tensor);
  const data = type === 'bool' ? Uint8Array.from(values as Uint8Array) : values;
  return new ort.Tensor(type as 'float32', data as Float32Array, tensor.dims ?? []);
}

export function float32Tensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/** Output values as float32 (float16/float64 converted), for comparing models. */
export function tensorAsFloat32(tensor: ort.Tensor): Float32Array {
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') {
    const data = tensor.data as unknown;
    return data instanceof Uint16Array ? float16BitsToFloat32(data) : Float32Array.from(data as ArrayLike<number>);
  }
  if (tensor.type === 'float64') return Float32Array.from(tensor.data as Float64Array);
  throw new Error(`output of type ${tensor.type} is not floating point`);
}

/** ORT element type name for an ONNX data type code. */
export function ortTypeOf(dataType: number): string {
  return ORT_TYPE_BY_DATA_TYPE[dataType] ?? `onnx type ${dataType}`;
}
