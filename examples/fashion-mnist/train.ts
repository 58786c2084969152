/*
 * Trains the fashion-mnist example (a 784-1024-10 MLP) on Debian's dataset-fashion-mnist and writes
 * 1/model.onnx, model.yaml and sample-request.json next to this script.
 *   npx tsx examples/fashion-mnist/train.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { encodeModel, writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { FASHION_MNIST_LABELS, readFashionMnist } from '../../src/optimize/datasets/idx-reader.ts';
import { ensureDebianPackages } from '../../test/support/debian-packages.ts';
import { trainOnnxMlp } from '../training/onnx-mlp-trainer.ts';

const PIXELS = 784;

const MODEL_YAML = `# Fashion-MNIST image classifier. Built by examples/fashion-mnist/train.ts.
name: fashion_mnist
description: Clothing category of a 28x28 grayscale image
inputs:
  pixels: { type: array, items: number, length: ${PIXELS}, minimum: 0, maximum: 255, description: row-major 28x28 pixel values 0-255 }
preprocess:
  tensor: pixels
  columns:
    - { min_max: pixels, min: 0, max: 255 }
postprocess:
  top3: { output: logits, softmax: true, top_k: 3, labels: [${FASHION_MNIST_LABELS.map((l) => JSON.stringify(l)).join(', ')}] }
instances: { count: 1, intra_op_threads: 1 }
batching: { max_batch_size: 64, preferred_batch_sizes: [16, 32, 64], max_queue_delay_us: 1000, max_queue_size: 4096, timeout_ms: 2000 }
sla: { p99_ms: 20 }
`;

/** One hidden layer this wide: batching pays on CPU when the weights are re-read per request (see BENCHMARKS.md, issue 3). */
const HIDDEN = 1024;

async function main(): Promise<void> {
  ensureDebianPackages(['dataset-fashion-mnist']);
  const here = dirname(fileURLToPath(import.meta.url));
  const model = await trainOnnxMlp({
    layers: [PIXELS, HIDDEN, 10],
    epochs: 10,
    inputName: 'pixels',
    graphName: 'fashion_mnist',
  });
  const test = readFashionMnist('t10k');
  const session = await ort.InferenceSession.create(encodeModel(model));
  const scaled = Float32Array.from(test.images, (p) => p / 255);
  const { logits } = await session.run({ pixels: new ort.Tensor('float32', scaled, [test.count, PIXELS]) });
  const scores = logits!.data as Float32Array;
  let correct = 0;
  for (let i = 0; i < test.count; i++) {
    let best = 0;
    for (let j = 1; j < 10; j++) if (scores[i * 10 + j]! > scores[i * 10 + best]!) best = j;
    if (best === test.labels[i]) correct++;
  }
  await session.release();
  console.log(`t10k accuracy ${((correct / test.count) * 100).toFixed(2)}%`);
  mkdirSync(join(here, '1'), { recursive: true });
  writeModelFile(join(here, '1', 'model.onnx'), model);
  writeFileSync(join(here, 'model.yaml'), MODEL_YAML);
  const sample = Array.from(test.images.subarray(0, PIXELS));
  writeFileSync(join(here, 'sample-request.json'), `${JSON.stringify({ pixels: sample })}\n`);
  console.log(
    `wrote ${join(here, '1', 'model.onnx')}, model.yaml and sample-request.json (sample is a t10k ${FASHION_MNIST_LABELS[test.labels[0]!]})`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
