/*
 * Why the 784-1024-1024-10 MLP's run costs more per row inside Caliper than in the floor's raw-ORT loop (issue 17:
 * 25.7–27.7 against 21.2–21.5 µs per row in the idle run of session 7). One process on core 0 runs, in alternated
 * windows, the same model at the same batch sizes in several ways, each alone and with a neighbour on core 1:
 *
 *  - `floor`: the floor's loop (bench/raw-ort.ts): onnxruntime-node's binding, a new input tensor over the same values
 *    per run, nothing else between runs;
 *  - `caliper`: Caliper's in-thread path for one batch: the requests' preprocessed rows (a Float32Array each, 64
 *    distinct images) stacked with concatRows, OnnxSession.run, the outputs split back per request (sliceRows);
 *  - `caliper+js`: the same, after the JavaScript a server does per batch between two runs: JSON.parse of each
 *    request's body (the bench's Fashion-MNIST bodies, ≈ 3 KB each) and its min-max preprocess into a new Float32Array;
 *    only the stack/run/split part is timed, so what rises is the run's cost after the JavaScript has used the caches;
 *  - `caliper-reuse`: `caliper` with the rows stacked into one reused input buffer (BatchInputBuffers: what an
 *    in-thread instance does since session 9; hypothesis c).
 *
 * The neighbour: a bare fastify route (bench/echo-server.ts) and autocannon (32 connections, the Fashion body), both
 * on core 1, as the load generator (and the kernel's share of the network work) runs beside a server in
 * bench/serving.ts.
 *
 *   node --import tsx bench/mlp-run-cost.ts [--model FILE.onnx] [--rounds 5] [--window 0.7] [--sizes 16,32] [--alone]
 *
 * `--alone` leaves the neighbour out (every window alone).
 *
 * Prints, per variant and size, the medians over rounds of wall and CPU µs per row (timed part), then per round the
 * ratios to the floor measured in the same neighbour condition, and each variant's neighbour ÷ alone ratio.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type ort from 'onnxruntime-node';
import { BatchInputBuffers } from '../src/runtime/batch-input-buffers.ts';
import { OnnxSession } from '../src/runtime/onnx-session.ts';
import { loadNativeSession } from '../src/runtime/ort-adapter.ts';
import { concatRows, sliceRows, type TensorData } from '../src/runtime/tensor.ts';
import { freePort } from '../src/system/free-port.ts';
import { numberOption } from './bench-options.ts';
import { fashionRequests } from './serving-requests.ts';

const root = join(import.meta.dirname, '..');
const modelAt = process.argv.indexOf('--model');
const MODEL = modelAt > 0 ? process.argv[modelAt + 1]! : join(root, 'bench/data/serving-mlp/784-1024-1024-10.onnx');
const ROUNDS = numberOption('--rounds', 5);
const WINDOW_S = numberOption('--window', 0.7);
const sizesAt = process.argv.indexOf('--sizes');
const SIZES = sizesAt > 0 ? process.argv[sizesAt + 1]!.split(',').map(Number) : [16, 32];
const WIDTH = 784;

execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });

const { Tensor }: typeof ort = createRequire(import.meta.url)('onnxruntime-node');
const options = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  logSeverityLevel: 3,
} as const;
const raw = loadNativeSession(MODEL, options);
const rawFetches: Record<string, null> = {};
for (const output of raw.outputMetadata) if (output.isTensor) rawFetches[output.name] = null;
const inputName = raw.inputMetadata[0]!.name;
const caliper = await OnnxSession.create({ modelPath: MODEL, intraOpThreads: 1, interOpThreads: 1, graphLevel: 'all' });

const documents = fashionRequests(root).documents as { pixels: number[] }[];
const bodies = documents.map((d) => JSON.stringify(d));
/** The min-max preprocess of one body: a new [1, 784] Float32Array, as Caliper's preprocess builds per request. */
const preprocess = (pixels: number[]): TensorData => {
  const data = new Float32Array(WIDTH);
  for (let i = 0; i < WIDTH; i++) data[i] = pixels[i]! / 255;
  return { type: 'float32', dims: [1, WIDTH], data };
};
const rows = documents.map((d) => preprocess(d.pixels));
const floorData = new Map(SIZES.map((b) => [b, new Float32Array(b * WIDTH).map((_, i) => (i % 7) / 7)]));
const inputBuffers = new BatchInputBuffers();

type Variant = 'floor' | 'caliper' | 'caliper+js' | 'caliper-reuse';
const VARIANTS: Variant[] = ['floor', 'caliper', 'caliper+js', 'caliper-reuse'];

let next = 0;
/** One batch of `size` rows the given way; returns the timed part's wall ms. */
function batch(variant: Variant, size: number): number {
  if (variant === 'floor') {
    const started = performance.now();
    raw.run({ [inputName]: new Tensor('float32', floorData.get(size)!, [size, WIDTH]) }, rawFetches, {});
    return performance.now() - started;
  }
  let parts: TensorData[];
  if (variant === 'caliper+js') {
    parts = [];
    for (let i = 0; i < size; i++)
      parts.push(preprocess((JSON.parse(bodies[next++ % 64]!) as { pixels: number[] }).pixels));
  } else {
    parts = [];
    for (let i = 0; i < size; i++) parts.push(rows[next++ % 64]!);
  }
  const started = performance.now();
  let feed: TensorData;
  if (variant === 'caliper-reuse') feed = inputBuffers.stack({ [inputName]: parts })[inputName]!;
  else feed = concatRows(parts);
  const outputs = caliper.run({ [inputName]: feed });
  for (const name in outputs) for (let i = 0; i < size; i++) sliceRows(outputs[name]!, i, 1);
  return performance.now() - started;
}

interface Window {
  /** Wall µs per row of the timed part. */
  wallUs: number;
  /** CPU µs per row of the whole window (all work). */
  cpuUs: number;
  /** Minor page faults per batch (a fresh buffer's pages are faulted in on first touch; counts are load-independent). */
  faults: number;
}

function window(variant: Variant, size: number): Window {
  for (let i = 0; i < 5; i++) batch(variant, size);
  let timedMs = 0;
  let runs = 0;
  const until = performance.now() + WINDOW_S * 1000;
  const cpu = process.cpuUsage();
  const faults = process.resourceUsage().minorPageFault;
  while (performance.now() < until) {
    timedMs += batch(variant, size);
    runs++;
  }
  const used = process.cpuUsage(cpu);
  return {
    wallUs: (timedMs * 1000) / (runs * size),
    cpuUs: (used.user + used.system) / (runs * size),
    faults: (process.resourceUsage().minorPageFault - faults) / runs,
  };
}

/** The neighbour on core 1: a bare route and autocannon loading it. Returns a stop function. */
async function startNeighbour(port: number): Promise<() => void> {
  const load: ChildProcess = spawn(
    'taskset',
    [
      '-c',
      '1',
      join(root, 'node_modules/.bin/autocannon'),
      '-c',
      '32',
      '-d',
      '600',
      '-m',
      'POST',
      '-H',
      'content-type=application/json',
      '-b',
      bodies[0]!,
      `http://127.0.0.1:${port}/models/fashion_mnist/predict`,
    ],
    { stdio: 'ignore' },
  );
  await new Promise((r) => setTimeout(r, 500));
  return () => load.kill('SIGINT');
}

const port = await freePort();
const echo = spawn('taskset', ['-c', '1', process.execPath, '--import', 'tsx', 'bench/echo-server.ts', String(port)], {
  cwd: root,
  stdio: 'ignore',
});
for (let i = 0; i < 100; i++) {
  try {
    await fetch(`http://127.0.0.1:${port}/`);
    break;
  } catch {
    await new Promise((r) => setTimeout(r, 100));
  }
}

const load = (): string =>
  execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ').slice(0, 3).join(' ');
console.log(
  `model ${MODEL}, sizes ${SIZES.join(',')}, ${ROUNDS} rounds of ${WINDOW_S} s windows; load average ${load()}`,
);
type Key = `${Variant} ${number} ${'alone' | 'neighbour'}`;
const results = new Map<Key, Window[]>();
const NEIGHBOUR = !process.argv.includes('--alone');
try {
  for (let round = 0; round < ROUNDS; round++) {
    const conditions = !NEIGHBOUR
      ? (['alone'] as const)
      : round % 2 === 0
        ? (['alone', 'neighbour'] as const)
        : (['neighbour', 'alone'] as const);
    for (const condition of conditions) {
      const stop = condition === 'neighbour' ? await startNeighbour(port) : undefined;
      const order = round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const size of SIZES)
        for (const variant of order) {
          const key: Key = `${variant} ${size} ${condition}`;
          results.set(key, [...(results.get(key) ?? []), window(variant, size)]);
        }
      stop?.();
      await new Promise((r) => setTimeout(r, 300));
    }
  }
} finally {
  echo.kill('SIGINT');
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const f = (x: number): string => x.toFixed(2);
for (const size of SIZES) {
  console.log(
    `\nbatch ${size}: median µs/row wall (CPU), minor faults per batch | median per-round ratio to the floor, same condition`,
  );
  for (const condition of NEIGHBOUR ? (['alone', 'neighbour'] as const) : (['alone'] as const)) {
    const floor = results.get(`floor ${size} ${condition}`)!;
    for (const variant of VARIANTS) {
      const rs = results.get(`${variant} ${size} ${condition}`)!;
      const ratio = median(rs.map((r, i) => r.wallUs / floor[i]!.wallUs));
      console.log(
        `  ${condition.padEnd(9)} ${variant.padEnd(14)} ${f(median(rs.map((r) => r.wallUs)))} (${f(median(rs.map((r) => r.cpuUs)))}), ${f(median(rs.map((r) => r.faults)))} faults  ×${ratio.toFixed(3)}`,
      );
    }
  }
  for (const variant of NEIGHBOUR ? VARIANTS : []) {
    const alone = results.get(`${variant} ${size} alone`)!;
    const near = results.get(`${variant} ${size} neighbour`)!;
    const ratios = near.map((r, i) => r.wallUs / alone[i]!.wallUs);
    console.log(
      `  neighbour ÷ alone, ${variant}: ${f(median(ratios))} (rounds ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
    );
  }
}
console.log(`load average ${load()}`);
raw.dispose();
await caliper.release();
