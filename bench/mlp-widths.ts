/*
 * Where batching pays on a CPU: raw ONNX Runtime (one intra-op thread) time per row at batch 1, 32 and 64 for
 * 784-input MLPs of growing width (random weights; the cost depends only on the shapes).
 *   taskset -c 0 node --import tsx bench/mlp-widths.ts   → bench/results/mlp-widths.json
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { exportMlp } from '../examples/training/mlp-export.ts';
import { Mlp, SeededRandom } from '../examples/training/mlp-trainer.ts';
import { writeModelFile } from '../src/optimize/onnx/model-io.ts';

const WIDTHS = [
  [784, 128, 10],
  [784, 512, 10],
  [784, 1024, 10],
  [784, 1024, 512, 10],
  [784, 2048, 10],
];
const dir = join(tmpdir(), `caliper-mlp-widths-${process.pid}`);
mkdirSync(dir, { recursive: true });

async function usPerRow(session: ort.InferenceSession, batch: number): Promise<number> {
  const feeds = {
    pixels: new ort.Tensor(
      'float32',
      new Float32Array(batch * 784).map((_, i) => (i % 7) / 7),
      [batch, 784],
    ),
  };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  let runs = 0;
  const started = performance.now();
  while (performance.now() - started < 1000) {
    await session.run(feeds);
    runs++;
  }
  return Math.round((((performance.now() - started) * 1000) / runs / batch) * 10) / 10;
}

const rows: Record<string, Record<string, number>> = {};
for (const sizes of WIDTHS) {
  const file = join(dir, `${sizes.join('-')}.onnx`);
  writeModelFile(
    file,
    exportMlp(new Mlp(sizes, 'softmax', new SeededRandom(1)), { input: 'pixels', output: 'logits', graph: 'mlp' }),
  );
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const row: Record<string, number> = {};
  for (const batch of [1, 32, 64]) row[`batch${batch}_us_per_row`] = await usPerRow(session, batch);
  row.batch1_over_batch32 = Math.round((row.batch1_us_per_row! / row.batch32_us_per_row!) * 100) / 100;
  rows[sizes.join('-')] = row;
  console.log(sizes.join('-'), row);
  await session.release();
}
rmSync(dir, { recursive: true, force: true });
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/mlp-widths.json',
  `${JSON.stringify({ command: 'taskset -c 0 node --import tsx bench/mlp-widths.ts', date: new Date().toISOString(), rows }, null, 2)}\n`,
);
