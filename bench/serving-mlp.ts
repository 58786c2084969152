/*
 * The mid-size model of the serving benchmark: a 784-1024-1024-10 MLP (7 MB of weights) trained on Fashion-MNIST with
 * the project's ONNX trainer (examples/training/onnx-mlp-trainer.ts), input `pixels` and output `logits` as the
 * fashion-mnist example, so the example's model.yaml serves it unchanged. Kept under bench/data/ (git-ignored) and
 * trained once (two epochs: the benchmark measures speed, not accuracy).
 *   node --import tsx bench/serving-mlp.ts   → prints the model's path
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { trainOnnxMlp } from '../examples/training/onnx-mlp-trainer.ts';
import { writeModelFile } from '../src/optimize/onnx/model-io.ts';

export const SERVING_MLP_LAYERS: readonly number[] = [784, 1024, 1024, 10];
export const SERVING_MLP_PATH = join(import.meta.dirname, 'data/serving-mlp/784-1024-1024-10.onnx');

/** The trained model's path, training it first when it is not there yet (about a minute per epoch on one core). */
export async function servingMlp(log: (line: string) => void = console.log): Promise<string> {
  if (existsSync(SERVING_MLP_PATH)) return SERVING_MLP_PATH;
  const model = await trainOnnxMlp({
    layers: SERVING_MLP_LAYERS,
    epochs: 2,
    inputName: 'pixels',
    graphName: 'fashion_mnist',
    log,
  });
  mkdirSync(dirname(SERVING_MLP_PATH), { recursive: true });
  writeModelFile(SERVING_MLP_PATH, model);
  return SERVING_MLP_PATH;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) console.log(await servingMlp());
