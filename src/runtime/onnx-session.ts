import ort from 'onnxruntime-node';
import type { GraphOptimizationLevel } from '../config/model-config.ts';
import type { ModelSignature, TensorSignature } from './model-signature.ts';
import type { ElementType, TensorData, TensorMap } from './tensor.ts';

/** What an ONNX Runtime session needs to be created; plain data so it can cross to a worker thread. */
export interface SessionSpec {
  modelPath: string;
  intraOpThreads: number;
  interOpThreads: number;
  graphLevel: GraphOptimizationLevel;
}

function signatureOf(metadata: readonly ort.InferenceSession.ValueMetadata[]): TensorSignature[] {
  return metadata.map((m) => {
    if (!m.isTensor) return { name: m.name, type: 'float32' as ElementType, shape: [], dimNames: [] };
    const shape = m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
    const dimNames = m.shape.map((d) => (typeof d === 'string' ? d : undefined));
    return { name: m.name, type: m.type as ElementType, shape, dimNames };
  });
}

function toOrtTensor(tensor: TensorData): ort.Tensor {
  return new ort.Tensor(tensor.type as ort.Tensor.Type, tensor.data as ort.Tensor.DataType, tensor.dims);
}

function fromOrtTensor(tensor: ort.Tensor): TensorData {
  return { type: tensor.type as ElementType, dims: [...tensor.dims], data: tensor.data as TensorData['data'] };
}

/** One ONNX Runtime session in the current thread. */
export class OnnxSession {
  private constructor(private readonly session: ort.InferenceSession, readonly signature: ModelSignature) {}

  static async create(spec: SessionSpec): Promise<OnnxSession> {
    const session = await ort.InferenceSession.create(spec.modelPath, {
      intraOpNumThreads: spec.intraOpThreads,
      interOpNumThreads: spec.interOpThreads,
      graphOptimizationLevel: spec.graphLevel,
      executionMode: 'sequential',
      logSeverityLevel: 3,
    });
    return new OnnxSession(session, { inputs: signatureOf(session.inputMetadata), outputs: signatureOf(session.outputMetadata) });
  }

  async run(feeds: TensorMap, outputNames?: readonly string[]): Promise<TensorMap> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(tensor);
    const results = outputNames && outputNames.length > 0
      ? await this.session.run(ortFeeds, outputNames as string[])
      : await this.session.run(ortFeeds);
    const outputs: TensorMap = {};
    for (const [name, value] of Object.entries(results)) outputs[name] = fromOrtTensor(value as ort.Tensor);
    return outputs;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
