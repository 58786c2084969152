// Trains a ReLU MLP classifier on Fashion-MNIST without any ML framework: one SGD step (forward, backward and
// momentum update) is itself an ONNX graph, run by ONNX Runtime — far faster than a JavaScript loop for wide layers.
// Usage: node --import tsx examples/training/onnx-mlp-trainer.ts [--layers 784,1024,1024,10] [--epochs 4] [--out FILE]
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';
import { loadDataset } from '../../src/optimize/datasets/dataset.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { encodeModel, writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';

/** The benchmarks' teacher model (bench/quantize.ts, bench/distill.ts). */
export const BENCH_LAYERS: readonly number[] = [784, 1024, 1024, 10];
const FLOAT = TensorDataType.FLOAT;

/** The training step: inputs x, one-hot y, lr, weights w_i [in,out], biases b_i and momenta; outputs updated ones. */
function trainingStepGraph(layers: readonly number[]): Uint8Array {
  const depth = layers.length - 1;
  const b = new GraphBuilder('mlp_sgd_step', 17);
  const x = b.input({ name: 'x', elemType: FLOAT, shape: ['B', layers[0]!] });
  const y = b.input({ name: 'y', elemType: FLOAT, shape: ['B', layers[depth]!] });
  const lr = b.input({ name: 'lr', elemType: FLOAT, shape: [] });
  const momentum = b.initializer(tensorFromArray('momentum', [], new Float32Array([0.9])));
  const zero = b.initializer(tensorFromArray('zero', [], new Float32Array([0])));
  const axes0 = b.initializer(tensorFromArray('axes0', [1], new BigInt64Array([0n])));
  const params = Array.from({ length: depth }, (_, i) => ({
    w: b.input({ name: `w${i}`, elemType: FLOAT, shape: [layers[i]!, layers[i + 1]!] }),
    b: b.input({ name: `b${i}`, elemType: FLOAT, shape: [layers[i + 1]!] }),
    vw: b.input({ name: `vw${i}`, elemType: FLOAT, shape: [layers[i]!, layers[i + 1]!] }),
    vb: b.input({ name: `vb${i}`, elemType: FLOAT, shape: [layers[i + 1]!] }),
  }));
  const activations = [x];
  const preActivations: string[] = [];
  for (let i = 0; i < depth; i++) {
    const [z] = b.node('Gemm', [activations[i]!, params[i]!.w, params[i]!.b]);
    preActivations.push(z!);
    if (i < depth - 1) activations.push(b.node('Relu', [z!])[0]!);
  }
  const [probabilities] = b.node('Softmax', [preActivations[depth - 1]!], { axis: 1 });
  const [batch] = b.node(
    'Cast',
    [
      b.node('Gather', [
        b.node('Shape', [x])[0]!,
        b.initializer(tensorFromArray('i0', [], new BigInt64Array([0n]))),
      ])[0]!,
    ],
    { to: FLOAT },
  );
  let delta = b.node('Div', [b.node('Sub', [probabilities!, y])[0]!, batch!])[0]!;
  const [loss] = b.node(
    'ReduceMean',
    [
      b.node('Neg', [
        b.node(
          'ReduceSum',
          [
            b.node('Mul', [
              y,
              b.node('Log', [
                b.node('Max', [
                  probabilities!,
                  b.initializer(tensorFromArray('eps', [], new Float32Array([1e-9]))),
                ])[0]!,
              ])[0]!,
            ])[0]!,
            b.initializer(tensorFromArray('axes1', [1], new BigInt64Array([1n]))),
          ],
          { keepdims: 0 },
        )[0]!,
      ])[0]!,
    ],
    { keepdims: 0 },
    ['loss'],
  );
  b.output({ name: loss!, elemType: FLOAT, shape: [] });
  for (let i = depth - 1; i >= 0; i--) {
    const gw = b.node('Gemm', [activations[i]!, delta], { transA: 1 })[0]!;
    const gb = b.node('ReduceSum', [delta, axes0], { keepdims: 0 })[0]!;
    if (i > 0) {
      const back = b.node('Gemm', [delta, params[i]!.w], { transB: 1 })[0]!;
      const mask = b.node('Cast', [b.node('Greater', [preActivations[i - 1]!, zero])[0]!], { to: FLOAT })[0]!;
      delta = b.node('Mul', [back, mask])[0]!;
    }
    for (const [param, velocity, gradient] of [
      [params[i]!.w, params[i]!.vw, gw],
      [params[i]!.b, params[i]!.vb, gb],
    ] as const) {
      const [v] = b.node('Add', [b.node('Mul', [velocity, momentum])[0]!, gradient], {}, [`new_${velocity}`]);
      b.node('Sub', [param, b.node('Mul', [v!, lr])[0]!], {}, [`new_${param}`]);
      b.output({ name: `new_${velocity}`, elemType: FLOAT, shape: [] });
      b.output({ name: `new_${param}`, elemType: FLOAT, shape: [] });
    }
  }
  return encodeModel(b.build('caliper-bench'));
}

function gaussian(seed: number): () => number {
  let state = seed;
  const uniform = () => (state = (state * 48271) % 2147483647) / 2147483647;
  return () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
}

export interface OnnxMlpTraining {
  /** Layer widths, input first: [784, 1024, 10] is one hidden layer of 1024. */
  layers: readonly number[];
  epochs: number;
  /** Name of the inference model's input (its output is `logits`). */
  inputName: string;
  graphName: string;
  log?: (line: string) => void;
}

/** Trains on fashion-mnist:train; the inference model has Gemm layers with [out, in] weights, as PyTorch exports Linear. */
export async function trainOnnxMlp(options: OnnxMlpTraining): Promise<ModelProto> {
  const { layers, epochs, log = console.log } = options;
  const depth = layers.length - 1;
  const train = await loadDataset('fashion-mnist:train');
  const session = await ort.InferenceSession.create(trainingStepGraph(layers), {
    intraOpNumThreads: 2,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
  const normal = gaussian(42);
  const state: Record<string, ort.Tensor> = {};
  for (let i = 0; i < depth; i++) {
    const [fanIn, fanOut] = [layers[i]!, layers[i + 1]!];
    const std = Math.sqrt(2 / fanIn);
    state[`w${i}`] = new ort.Tensor(
      'float32',
      Float32Array.from({ length: fanIn * fanOut }, () => normal() * std),
      [fanIn, fanOut],
    );
    state[`b${i}`] = new ort.Tensor('float32', new Float32Array(fanOut), [fanOut]);
    state[`vw${i}`] = new ort.Tensor('float32', new Float32Array(fanIn * fanOut), [fanIn, fanOut]);
    state[`vb${i}`] = new ort.Tensor('float32', new Float32Array(fanOut), [fanOut]);
  }
  const [width, classes] = [layers[0]!, layers[depth]!];
  const batchSize = 128;
  const order = Array.from({ length: train.count }, (_, i) => i);
  let seed = 7;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      seed = (seed * 48271) % 2147483647;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const lr = new ort.Tensor('float32', new Float32Array([epoch < epochs - 1 ? 0.05 : 0.01]), []);
    let lossSum = 0;
    let steps = 0;
    const started = Date.now();
    for (let start = 0; start + batchSize <= order.length; start += batchSize) {
      const x = new Float32Array(batchSize * width);
      const y = new Float32Array(batchSize * classes);
      for (let r = 0; r < batchSize; r++) {
        const index = order[start + r]!;
        x.set(train.features.subarray(index * width, index * width + width), r * width);
        y[r * classes + train.labels![index]!] = 1;
      }
      const result = await session.run({
        x: new ort.Tensor('float32', x, [batchSize, width]),
        y: new ort.Tensor('float32', y, [batchSize, classes]),
        lr,
        ...state,
      });
      for (const name of Object.keys(state)) state[name] = result[`new_${name}`]!;
      lossSum += (result.loss!.data as Float32Array)[0]!;
      steps++;
    }
    log(
      `epoch ${epoch + 1}/${epochs}: mean loss ${(lossSum / steps).toFixed(4)} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  }
  await session.release();
  const b = new GraphBuilder(options.graphName, 17);
  let h = b.input({ name: options.inputName, elemType: FLOAT, shape: ['N', width] });
  for (let i = 0; i < depth; i++) {
    const [fanIn, fanOut] = [layers[i]!, layers[i + 1]!];
    const w = state[`w${i}`]!.data as Float32Array;
    const transposed = new Float32Array(w.length);
    for (let r = 0; r < fanIn; r++) for (let c = 0; c < fanOut; c++) transposed[c * fanIn + r] = w[r * fanOut + c]!;
    const weight = b.initializer(tensorFromArray(`fc${i + 1}.weight`, [fanOut, fanIn], transposed));
    const bias = b.initializer(tensorFromArray(`fc${i + 1}.bias`, [fanOut], state[`b${i}`]!.data as Float32Array));
    [h] = b.node('Gemm', [h, weight, bias], { transB: 1 }, i === depth - 1 ? ['logits'] : undefined);
    if (i < depth - 1) [h] = b.node('Relu', [h!]);
  }
  b.output({ name: 'logits', elemType: FLOAT, shape: ['N', classes] });
  return b.build('caliper-examples');
}

/** Trains an MLP with input `image` (the benchmarks' teacher by default) and writes it to `out`. */
export async function trainFashionMlp(
  out: string,
  epochs = 4,
  log: (line: string) => void = console.log,
  layers: readonly number[] = BENCH_LAYERS,
): Promise<void> {
  const model = await trainOnnxMlp({ layers, epochs, inputName: 'image', graphName: 'fashion_mlp', log });
  mkdirSync(dirname(out), { recursive: true });
  writeModelFile(out, model);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      layers: { type: 'string', default: BENCH_LAYERS.join(',') },
      epochs: { type: 'string', default: '4' },
      out: { type: 'string', default: 'bench/models/fashion-mlp.onnx' },
    },
  });
  await trainFashionMlp(values.out!, Number(values.epochs), console.log, values.layers!.split(',').map(Number));
  console.log(`wrote ${values.out}`);
}
