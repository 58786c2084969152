/*
 * Batch scoring benchmark (issue 6), all in one run:
 *  1. 1M fraud rows Parquet → Parquet through `caliper batch` (columnar fast path, and the row path with --row-path)
 *     vs raw ONNX Runtime on pre-built tensors at the same batch size (in-process, 1 intra-op thread), and vs the
 *     Parquet I/O floor (DuckDB alone copying the file with two constant prediction columns), interleaved round by round;
 *  2. peak memory of `caliper batch` at 1M and 5M rows;
 *  3. one `caliper worker` vs two on a shared queue (private redis-server), interleaved; output to a folder of parts
 *     (workers' throughput, without the coordinator's final merge into one file).
 * Usage: node --import tsx bench/batch.ts [--rounds 3] [--batch-size 8192] [--skip-5m]
 * Data comes from scripts/generate-fraud-data.ts (bench/data/, generated when missing). Results: bench/results/batch.json
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import ort from 'onnxruntime-node';
import { generateFraudData } from '../scripts/generate-fraud-data.ts';
import { startPrivateRedis } from '../test/support/redis-server.ts';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'batch-size': { type: 'string', default: '8192' }, 'skip-5m': { type: 'boolean', default: false } } });
const ROUNDS = Number(args.rounds);
const BATCH = Number(args['batch-size']);
const CLI = 'bin/caliper.js';
const WORK = 'tmp/bench-batch';

// A private copy of fraud-detector version 1 (the example folder's default version may change under other work).
const MODEL = join(WORK, 'fraud_detector');
mkdirSync(join(MODEL, '1'), { recursive: true });
copyFileSync('examples/fraud-detector/model.yaml', join(MODEL, 'model.yaml'));
copyFileSync('examples/fraud-detector/1/model.onnx', join(MODEL, '1', 'model.onnx'));

async function dataFile(rows: number, name: string): Promise<string> {
  const path = `bench/data/${name}`;
  if (!existsSync(path)) {
    console.log(`generating ${path}`);
    await generateFraudData({ rows, out: path, seed: 1 });
  }
  return path;
}
const DATA_1M = await dataFile(1_000_000, 'fraud-1m.parquet');

/** Raw ORT: 1M rows as pre-built [BATCH,10] float32 tensors through one session, 1 intra-op thread. */
async function rawOrt(session: ort.InferenceSession, rows: number): Promise<number> {
  const data = new Float32Array(BATCH * 10).map((_, i) => (i % 7) / 7);
  const feeds = { features: new ort.Tensor('float32', data, [BATCH, 10]) };
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const started = performance.now();
  for (let done = 0; done < rows; done += BATCH) await session.run(feeds);
  return rows / ((performance.now() - started) / 1000);
}

interface Summary { rows: number; outputRows: number; seconds: number; rowsPerSecond: number; peakRssBytes?: number }

function caliperBatch(input: string, output: string, extra: string[] = []): Summary {
  rmSync(output, { recursive: true, force: true });
  const run = spawnSync(process.execPath, [CLI, 'batch', '--model', MODEL, '--input', input, '--output', output, '--batch-size', String(BATCH), '--json', '--overwrite', ...extra], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`caliper batch failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Summary;
}

/** The Parquet I/O any batch scorer pays here: DuckDB alone reads the 1M rows and writes them with two constant prediction columns. */
async function ioFloor(rows: number): Promise<number> {
  const instance = await DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true' });
  const connection = await instance.connect();
  const out = join(WORK, 'floor.parquet');
  const started = performance.now();
  await connection.run(`COPY (SELECT *, 0.5::DOUBLE AS fraud_probability, false AS is_fraud FROM read_parquet('${DATA_1M}')) TO '${out}' (FORMAT parquet)`);
  const perSecond = rows / ((performance.now() - started) / 1000);
  connection.closeSync();
  instance.closeSync();
  rmSync(out, { force: true });
  return perSecond;
}

const session = await ort.InferenceSession.create(join(MODEL, '1', 'model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
const raw: number[] = [];
const floor: number[] = [];
const endToEnd: Summary[] = [];
const rowPath: Summary[] = [];
for (let round = 0; round < ROUNDS; round++) {
  raw.push(await rawOrt(session, 1_000_000));
  floor.push(await ioFloor(1_000_000));
  const summary = caliperBatch(DATA_1M, join(WORK, 'scored-1m.parquet'));
  endToEnd.push(summary);
  const rows = caliperBatch(DATA_1M, join(WORK, 'scored-1m-rows.parquet'), ['--row-path']);
  rowPath.push(rows);
  console.log(`round ${round + 1}: raw ORT ${Math.round(raw.at(-1)!)} rows/s, I/O floor ${Math.round(floor.at(-1)!)} rows/s, caliper batch ${Math.round(summary.rowsPerSecond)} rows/s (row path ${Math.round(rows.rowsPerSecond)}), peak ${Math.round((summary.peakRssBytes ?? 0) / 2 ** 20)} MiB`);
}
await session.release();
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

let memory5m: Summary | undefined;
if (!args['skip-5m']) {
  const DATA_5M = await dataFile(5_000_000, 'fraud-5m.parquet');
  memory5m = caliperBatch(DATA_5M, join(WORK, 'scored-5m.parquet'));
  console.log(`5M rows: ${Math.round(memory5m.rowsPerSecond)} rows/s, peak ${Math.round((memory5m.peakRssBytes ?? 0) / 2 ** 20)} MiB`);
  rmSync(join(WORK, 'scored-5m.parquet'), { force: true });
}

// One worker vs two on a shared queue; workers are started (and their model loaded on the first shard) before timing.
const redis = await startPrivateRedis();
async function startWorkers(n: number): Promise<ChildProcess[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<ChildProcess>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'worker', '--queue', redis.url], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); if (stderr.includes('waiting for shards')) resolve(child); });
    child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${stderr}`)));
  })));
}
async function stopWorkers(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => new Promise<void>((resolve) => { c.removeAllListeners('exit'); c.once('exit', () => resolve()); c.kill('SIGTERM'); })));
}
const scaling: Record<'one' | 'two', number[]> = { one: [], two: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const [label, n] of [['one', 1], ['two', 2]] as const) {
      const children = await startWorkers(n);
      // A small warm-up job loads the model in every worker.
      caliperBatch(DATA_1M, join(WORK, 'warm'), ['--queue', redis.url, '--chunk-rows', '250000', '--keep', 'transaction_id']);
      const summary = caliperBatch(DATA_1M, join(WORK, `workers-${label}`), ['--queue', redis.url, '--chunk-rows', '100000', '--format', 'parquet']);
      scaling[label].push(summary.rowsPerSecond);
      console.log(`round ${round + 1}: ${label} worker(s) ${Math.round(summary.rowsPerSecond)} rows/s`);
      await stopWorkers(children);
    }
  }
} finally {
  await redis.dispose();
}

const result = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), note: 'shared with other engineers running tests; no GPU' },
  batchSize: BATCH,
  rounds: ROUNDS,
  rawOrtRowsPerSecond: raw.map(Math.round),
  caliperBatch1mRowsPerSecond: endToEnd.map((s) => Math.round(s.rowsPerSecond)),
  endToEndVsRawOrt: median(endToEnd.map((s) => s.rowsPerSecond)) / median(raw),
  ioFloorRowsPerSecond: floor.map(Math.round),
  ioFloorVsRawOrt: median(floor) / median(raw),
  endToEndVsIoFloor: median(endToEnd.map((s) => s.rowsPerSecond)) / median(floor),
  rowPath1mRowsPerSecond: rowPath.map((s) => Math.round(s.rowsPerSecond)),
  rowPathVsRawOrt: median(rowPath.map((s) => s.rowsPerSecond)) / median(raw),
  columnarVsRowPath: median(endToEnd.map((s) => s.rowsPerSecond)) / median(rowPath.map((s) => s.rowsPerSecond)),
  peakRssMiB1mRowPath: rowPath.map((s) => Math.round((s.peakRssBytes ?? 0) / 2 ** 20)),
  peakRssMiB1m: endToEnd.map((s) => Math.round((s.peakRssBytes ?? 0) / 2 ** 20)),
  peakRssMiB5m: memory5m ? Math.round((memory5m.peakRssBytes ?? 0) / 2 ** 20) : null,
  peakRss5mVs1m: memory5m ? (memory5m.peakRssBytes ?? 0) / median(endToEnd.map((s) => s.peakRssBytes ?? 0)) : null,
  oneWorkerRowsPerSecond: scaling.one.map(Math.round),
  twoWorkersRowsPerSecond: scaling.two.map(Math.round),
  twoVsOneWorker: median(scaling.two) / median(scaling.one),
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/batch.json', `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
