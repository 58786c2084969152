import { createRequire } from 'node:module';
import type ort from 'onnxruntime-node';
import type { GraphOptimizationLevel } from '../config/model-config.ts';
import type { ModelSignature, TensorSignature } from './model-signature.ts';
import { elementTypeOfCode, loadNativeSession, type NativeOrtSession, type OrtValueMetadata } from './ort-adapter.ts';
import type { ElementType, TensorData, TensorMap } from './tensor.ts';

// Loaded with `require` (CommonJS): an ES import makes Node scan the package's re-exported files for export names
// (cjs-module-lexer) at every start, about a tenth of a second of CPU.
const { Tensor: OrtTensor }: typeof ort = createRequire(import.meta.url)('onnxruntime-node');

/** What an ONNX Runtime session needs to be created; plain data so it can cross to a worker thread. */
export interface SessionSpec {
  modelPath: string;
  intraOpThreads: number;
  interOpThreads: number;
  graphLevel: GraphOptimizationLevel;
}

function signatureOf(metadata: readonly OrtValueMetadata[]): TensorSignature[] {
  return metadata.map((m) => {
    if (!m.isTensor)
      return { name: m.name, type: 'float32' as ElementType, shape: [], dimNames: [], isTensor: false as const };
    const type = elementTypeOfCode(m.type);
    if (type === undefined) throw new Error(`${m.name}: unsupported ONNX element type ${m.type}`);
    const shape = m.shape.map((d) => (d >= 0 ? d : -1));
    const dimNames = m.shape.map((d, i) => (d === -1 ? m.symbolicDimensions[i] : undefined));
    return { name: m.name, type, shape, dimNames };
  });
}

function toOrtTensor(tensor: TensorData): ort.Tensor {
  return new OrtTensor(tensor.type as ort.Tensor.Type, tensor.data as ort.Tensor.DataType, tensor.dims);
}

function fromOrtTensor(tensor: ort.Tensor): TensorData {
  return { type: tensor.type as ElementType, dims: [...tensor.dims], data: tensor.data as TensorData['data'] };
}

const RUN_OPTIONS: ort.InferenceSession.RunOptions = Object.freeze({});

/**
 * One ONNX Runtime session in the current thread, on onnxruntime-node's native binding (reached through
 * ort-adapter.ts): `run` computes and returns at once, where the package's InferenceSession.run waits a turn of
 * the event loop.
 */
export class OnnxSession {
  private readonly inputNames: readonly string[];
  private readonly outputNames: readonly string[];
  private readonly knownOutputs: ReadonlySet<string>;

  private constructor(
    private readonly session: NativeOrtSession,
    readonly signature: ModelSignature,
  ) {
    this.inputNames = signature.inputs.map((t) => t.name);
    this.outputNames = signature.outputs.map((t) => t.name);
    this.knownOutputs = new Set(this.outputNames);
  }

  static async create(spec: SessionSpec): Promise<OnnxSession> {
    const session = loadNativeSession(spec.modelPath, {
      intraOpNumThreads: spec.intraOpThreads,
      interOpNumThreads: spec.interOpThreads,
      graphOptimizationLevel: spec.graphLevel,
      executionMode: 'sequential',
      logSeverityLevel: 3,
    });
    // Only tensor outputs are fetched: onnxruntime-node cannot return sequences or maps (a ZipMap's output).
    const outputs = signatureOf(session.outputMetadata);
    const unserved = outputs.filter((o) => o.isTensor === false).map((o) => ({ name: o.name, type: 'non-tensor' }));
    return new OnnxSession(session, {
      inputs: signatureOf(session.inputMetadata),
      outputs: outputs.filter((o) => o.isTensor !== false),
      ...(unserved.length > 0 ? { unserved } : {}),
    });
  }

  /** Runs the model synchronously (the calling thread computes); all outputs unless `outputNames` picks some. */
  run(feeds: TensorMap, outputNames?: readonly string[]): TensorMap {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const tensor = feeds[name];
      if (tensor === undefined) throw new Error(`input '${name}' is missing in 'feeds'.`);
      ortFeeds[name] = toOrtTensor(tensor);
    }
    const fetches: Record<string, null> = {};
    for (const name of outputNames && outputNames.length > 0 ? outputNames : this.outputNames) {
      if (!this.knownOutputs.has(name)) throw new RangeError(`'fetches' contains invalid output name: ${name}.`);
      fetches[name] = null;
    }
    const results = this.session.run(ortFeeds, fetches, RUN_OPTIONS);
    const outputs: TensorMap = {};
    for (const name in results) outputs[name] = fromOrtTensor(results[name]!);
    return outputs;
  }

  async release(): Promise<void> {
    this.session.dispose();
  }
}
