/*
 * Raw ONNX Runtime in-process: the ceiling for serving one model on one core, at batch 1 and batched.
 * Usage: node --import tsx bench/raw-ort.ts MODEL.onnx INPUT_NAME WIDTH SECONDS [BATCH,BATCH...] [--cold]  → one JSON
 * line on stdout, rows per second and CPU µs per row at each batch size (1, 8, 32 and 64 unless sizes are given).
 *
 * `--cold` adds, per size, the median wall µs per row of the run call alone in a tight loop (`batchN_run_us_per_row`)
 * and with server-like JavaScript between two calls (`batchN_run_us_per_row_cold`: the JSON of N fraud requests parsed
 * and N answers written, a few thousand small objects made, as a server does between two batches). In a server the run
 * meets caches and branch predictors the request handling has just used; a loop that only runs the model does not.
 *
 * The model runs through onnxruntime-node's native binding, synchronously (src/runtime/ort-adapter.ts), with the
 * session options of a Caliper in-thread instance (one intra-op and one inter-op thread, sequential, graph level
 * all): the path Caliper itself calls. The package's InferenceSession.run adds its own checks and a turn of the event
 * loop to every call (measured alternately in one process: 17.5–18.1 µs of CPU per call against 7.6–8.6 through the
 * binding for the fraud model at 1–32 rows), which a floor must not count as the runtime's cost.
 */
import { createRequire } from 'node:module';
import type ort from 'onnxruntime-node';
import { loadNativeSession } from '../src/runtime/ort-adapter.ts';
import { fraudRequests } from './serving-requests.ts';

const { Tensor }: typeof ort = createRequire(import.meta.url)('onnxruntime-node');
const COLD = process.argv.includes('--cold');
const [modelPath, inputName, widthArg, secondsArg, batchesArg] = process.argv.slice(2).filter((a) => a !== '--cold');
const width = Number(widthArg);
const seconds = Number(secondsArg ?? 2);
const session = loadNativeSession(modelPath!, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  logSeverityLevel: 3,
});
const fetches: Record<string, null> = {};
for (const output of session.outputMetadata) if (output.isTensor) fetches[output.name] = null;
const RUN_OPTIONS = {};

/**
 * Rows per second at `batch` (wall time), and µs of this process's CPU per row (CPU time: on a shared machine the
 * wall time also counts the time other processes held the core, the CPU time does not). Each run gets a new input
 * tensor over the same values, as a server builds one per batch.
 */
function measureBatch(batch: number): { rowsPerSecond: number; cpuUsPerRow: number } {
  const data = new Float32Array(batch * width).map((_, i) => (i % 7) / 7);
  const run = (): void => {
    session.run({ [inputName!]: new Tensor('float32', data, [batch, width]) }, fetches, RUN_OPTIONS);
  };
  for (let i = 0; i < 50; i++) run();
  let runs = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    run();
    runs++;
  }
  const cpu = process.cpuUsage(cpuBefore);
  return {
    rowsPerSecond: (runs * batch) / ((performance.now() - started) / 1000),
    cpuUsPerRow: (cpu.user + cpu.system) / (runs * batch),
  };
}

const bodies = fraudRequests().documents.map((d) => JSON.stringify(d));
let sink = 0;
/** What a server does between two batches of `batch` rows, roughly: their JSON read and answered, small objects made. */
function serverWork(batch: number, k: number): void {
  for (let r = 0; r < batch; r++) {
    const body = JSON.parse(bodies[(k * batch + r) % bodies.length]!) as Record<string, unknown>;
    sink += JSON.stringify({ ...body, fraud_probability: r / batch, latency_ms: 0.2, model_name: 'm' }).length;
  }
  sink += Array.from({ length: 2000 }, (_, i) => ({ i, s: `x${i + k}` })).length;
}

/** Median wall µs per row of the run call alone, `calls` calls, with or without server-like work between them. */
function medianRunUsPerRow(batch: number, cold: boolean, calls: number): number {
  const data = new Float32Array(batch * width).map((_, i) => (i % 7) / 7);
  const ns: number[] = [];
  for (let k = 0; k < calls; k++) {
    if (cold) serverWork(batch, k);
    const t = process.hrtime.bigint();
    session.run({ [inputName!]: new Tensor('float32', data, [batch, width]) }, fetches, RUN_OPTIONS);
    ns.push(Number(process.hrtime.bigint() - t));
  }
  ns.sort((a, b) => a - b);
  return ns[Math.floor(calls / 2)]! / 1000 / batch;
}

const result: Record<string, number> = {};
const batches = batchesArg ? batchesArg.split(',').map(Number) : [1, 8, 32, 64];
for (const batch of batches) {
  const { rowsPerSecond, cpuUsPerRow } = measureBatch(batch);
  result[`batch${batch}_rows_per_s`] = Math.round(rowsPerSecond);
  result[`batch${batch}_cpu_us_per_row`] = Math.round(cpuUsPerRow * 1000) / 1000;
  if (COLD) {
    // As many calls as fit the same time budget in the tight loop, at least 50.
    const calls = Math.max(50, Math.min(2000, Math.round((seconds * rowsPerSecond) / batch)));
    medianRunUsPerRow(batch, true, Math.min(calls, 100));
    result[`batch${batch}_run_us_per_row`] = Math.round(medianRunUsPerRow(batch, false, calls) * 1000) / 1000;
    result[`batch${batch}_run_us_per_row_cold`] = Math.round(medianRunUsPerRow(batch, true, calls) * 1000) / 1000;
  }
}
if (sink < 0) console.error(sink);
console.log(JSON.stringify(result));
session.dispose();
