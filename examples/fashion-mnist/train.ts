/*
 * Trains the fashion-mnist example (a 784-128-10 MLP) on Debian's dataset-fashion-mnist and writes
 * 1/model.onnx, model.yaml and sample-request.json next to this script.
 *   npx tsx examples/fashion-mnist/train.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { FASHION_MNIST_LABELS, readFashionMnist } from '../../src/optimize/datasets/idx-reader.ts';
import { ensureDebianPackages } from '../../src/system/debian-packages.ts';
import { exportMlp } from '../training/mlp-export.ts';
import { Mlp, SeededRandom, shuffledIndices } from '../training/mlp-trainer.ts';

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
instances: { count: 1, kind: worker, intra_op_threads: 1 }
batching: { max_batch_size: 64, preferred_batch_sizes: [16, 32, 64], max_queue_delay_us: 1000, max_queue_size: 4096, timeout_ms: 2000 }
sla: { p99_ms: 20 }
`;

function scaled(images: Uint8Array, index: number, out: Float32Array, offset: number): void {
  for (let p = 0; p < PIXELS; p++) out[offset + p] = images[index * PIXELS + p]! / 255;
}

function main(): void {
  ensureDebianPackages(['dataset-fashion-mnist']);
  const here = dirname(fileURLToPath(import.meta.url));
  const train = readFashionMnist('train');
  const test = readFashionMnist('t10k');
  const random = new SeededRandom(2024);
  const mlp = new Mlp([PIXELS, 128, 10], 'softmax', random);
  const batch = 64;
  const xTest = new Float32Array(test.count * PIXELS);
  for (let i = 0; i < test.count; i++) scaled(test.images, i, xTest, i * PIXELS);
  for (let epoch = 0; epoch < 4; epoch++) {
    const order = shuffledIndices(train.count, random);
    let loss = 0;
    let batches = 0;
    const x = new Float32Array(batch * PIXELS);
    const y = new Uint8Array(batch);
    for (let start = 0; start + batch <= order.length; start += batch) {
      for (let k = 0; k < batch; k++) {
        const i = order[start + k]!;
        scaled(train.images, i, x, k * PIXELS);
        y[k] = train.labels[i]!;
      }
      loss += mlp.trainBatch(x, y, batch, epoch < 2 ? 0.001 : 0.0005);
      batches++;
    }
    const probs = mlp.predict(xTest, test.count);
    let correct = 0;
    for (let i = 0; i < test.count; i++) {
      let best = 0;
      for (let j = 1; j < 10; j++) if (probs[i * 10 + j]! > probs[i * 10 + best]!) best = j;
      if (best === test.labels[i]) correct++;
    }
    console.log(`epoch ${epoch + 1}: loss ${(loss / batches).toFixed(4)}, t10k accuracy ${(correct / test.count * 100).toFixed(2)}%`);
  }
  mkdirSync(join(here, '1'), { recursive: true });
  writeModelFile(join(here, '1', 'model.onnx'), exportMlp(mlp, { input: 'pixels', output: 'logits', graph: 'fashion_mnist' }));
  writeFileSync(join(here, 'model.yaml'), MODEL_YAML);
  const sample = Array.from(test.images.subarray(0, PIXELS));
  writeFileSync(join(here, 'sample-request.json'), `${JSON.stringify({ pixels: sample })}\n`);
  console.log(`wrote ${join(here, '1', 'model.onnx')}, model.yaml and sample-request.json (sample is a t10k ${FASHION_MNIST_LABELS[test.labels[0]!]})`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
