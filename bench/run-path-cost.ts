/*
 * What Caliper's in-thread run path costs per batch above ONNX Runtime itself (issue 17), in one process on one core,
 * nothing else between runs, in alternated windows:
 *
 *  - `raw`: the floor's call (bench/raw-ort.ts): onnxruntime-node's binding, a new input tensor over one prepared
 *    buffer, awaited as a server awaits a batch;
 *  - `new-buffer`: the requests' rows (one [1, width] Float32Array each) stacked into a new buffer per batch
 *    (stackParts, the worker instances' way and the in-thread way before session 9), then InThreadInstance.run;
 *  - `run-rows`: InThreadInstance.runRows, the in-thread path the batcher takes since session 9: the rows stacked into
 *    the instance's reused input buffer (BatchInputBuffers), the run, the outputs wrapped.
 *
 *   node --import tsx bench/run-path-cost.ts [fraud|mlp] [--size 8] [--rounds 7] [--batches 20000]
 *
 * Prints the median over rounds of CPU µs per batch for each, and per round run-rows ÷ new-buffer.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type ort from 'onnxruntime-node';
import { stackParts } from '../src/runtime/batch-input-buffers.ts';
import { InThreadInstance } from '../src/runtime/model-instance.ts';
import { loadNativeSession } from '../src/runtime/ort-adapter.ts';
import type { TensorData } from '../src/runtime/tensor.ts';
import { numberOption } from './bench-options.ts';

const root = join(import.meta.dirname, '..');
const MLP = process.argv.includes('mlp');
const MODEL = MLP
  ? join(root, 'bench/data/serving-mlp/784-1024-1024-10.onnx')
  : join(root, 'examples/fraud-detector/1/model.onnx');
const WIDTH = MLP ? 784 : 10;
const SIZE = numberOption('--size', 8);
const ROUNDS = numberOption('--rounds', 7);
const BATCHES = numberOption('--batches', MLP ? 300 : 20000);

execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });

const { Tensor }: typeof ort = createRequire(import.meta.url)('onnxruntime-node');
const spec = { modelPath: MODEL, intraOpThreads: 1, interOpThreads: 1, graphLevel: 'all' as const };
const instance = await InThreadInstance.load(0, spec);
const raw = loadNativeSession(MODEL, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  logSeverityLevel: 3,
});
const input = instance.signature.inputs[0]!.name;
const fetches: Record<string, null> = {};
for (const output of raw.outputMetadata) if (output.isTensor) fetches[output.name] = null;

const row = (seed: number): TensorData => ({
  type: 'float32',
  dims: [1, WIDTH],
  data: new Float32Array(WIDTH).map((_, i) => ((seed * 31 + i) % 255) / 255),
});
const rows = Array.from({ length: SIZE }, (_, i) => row(i));
const flat = stackParts({ [input]: rows })[input]!.data as Float32Array;

const variants: Record<string, () => Promise<unknown>> = {
  raw: async () => raw.run({ [input]: new Tensor('float32', flat, [SIZE, WIDTH]) }, fetches, {}),
  'new-buffer': () => instance.run(stackParts({ [input]: rows })),
  'run-rows': () => instance.runRows({ [input]: rows }),
};

const perBatch: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, batch] of Object.entries(variants)) {
    for (let i = 0; i < 20; i++) await batch();
    const started = process.cpuUsage();
    for (let i = 0; i < BATCHES; i++) await batch();
    const used = process.cpuUsage(started);
    (perBatch[name] ??= []).push((used.user + used.system) / BATCHES);
  }
}
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;
console.log(`${MLP ? 'MLP 784-1024-1024-10' : 'fraud'}, batches of ${SIZE}, ${ROUNDS} rounds of ${BATCHES} batches`);
for (const name in perBatch)
  console.log(`  ${name.padEnd(10)} ${median(perBatch[name]!).toFixed(2)} µs of CPU per batch`);
const ratios = perBatch['run-rows']!.map((v, i) => v / perBatch['new-buffer']![i]!);
console.log(
  `  run-rows ÷ new-buffer per round: ${ratios.map((r) => r.toFixed(3)).join(', ')}; median ${median(ratios).toFixed(3)}`,
);
const overRaw = perBatch['run-rows']!.map((v, i) => v - perBatch.raw![i]!);
console.log(`  run-rows − raw per round (µs per batch): median ${median(overRaw).toFixed(2)}`);
instance.release();
