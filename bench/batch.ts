/*
 * Batch scoring benchmark (issue 18), all in one run, same machine, same load:
 *  1. 1M fraud rows CSV → CSV and JSONL → JSONL: `caliper batch` vs the seed's pandas + PyTorch job
 *     (bench/batch-pandas-job.py: pd.read_csv / read_json, numpy features, torch.no_grad() chunks of 4096 at 1 thread,
 *     to_csv / to_json; Debian's python3-torch and python3-pandas, installed with apt-get when missing), both timed as
 *     whole commands (process start to exit) with /usr/bin/time (wall, CPU, peak RSS), interleaved round by round;
 *  2. 1M rows Parquet → Parquet: `caliper batch`'s own rows/s (its summary: read, score, write, merge) vs the Parquet
 *     I/O floor (DuckDB alone copying the file with two constant prediction columns), interleaved; the figure is the
 *     median of the rounds' own ratios (medianVsMedian in the JSON: the median job over the median floor). The job
 *     adds its predictions to the input's own column chunks (parquet-stitch.ts; `caliperStitched` says it did); each
 *     round also times it with CALIPER_BATCH_STITCH=off, every column decoded and written again as the floor does
 *     (`rewrittenVsIoFloor`);
 *  3. peak RSS of `caliper batch` at 1M and 5M rows for every format;
 *  4. one `caliper worker` vs two on a shared queue (private redis-server), 1M Parquet rows in 100k-row shards to a
 *     folder of parts, and (unless --skip-5m) 5M rows in 250k-row shards: a 1M job lasts 0.3-0.6 s, so one stall of
 *     the machine moves its ratio by tenths (session 11: rounds 1.25-2.02 idle); the 5M job lasts 1-2 s. Each size's
 *     two ÷ one is the median of its rounds' own ratios (both runs of a round under the same load). Workers run one per
 *     core, each pinned to its own (`caliper worker --cpu N`; --unpinned leaves them to the scheduler, where a worker's
 *     DuckDB and JavaScript threads, which take turns, wait behind the other worker's on its core).
 * `caliper batch` runs as the installed package runs it: the bench builds dist/ first (npm run build) and times
 * `node dist/cli/main.js batch …` (--cli source times bin/caliper.js instead, which compiles the TypeScript sources
 * through tsx on every start).
 * Usage: node --import tsx bench/batch.ts [--rounds 1] [--batch-size 8192] [--skip-5m] [--skip-workers] [--only-workers]
 *   [--unpinned] [--cli dist|source]
 * `--only-workers` runs section 4 alone (results to bench/results/batch-workers.json); one worker and two alternate
 * which goes first, round by round.
 * Data: scripts/generate-fraud-data.ts (bench/data/, generated when missing). Results: bench/results/batch.json
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { readModelFile } from '../src/optimize/onnx/model-io.ts';
import { tensorToFloat32 } from '../src/optimize/onnx/tensor-values.ts';
import { generateFraudData } from '../scripts/generate-fraud-data.ts';
import { ensureDebianPackages } from '../test/support/debian-packages.ts';
import { startPrivateRedis } from '../test/support/redis-server.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: '8192' },
    'skip-5m': { type: 'boolean', default: false },
    'skip-workers': { type: 'boolean', default: false },
    'only-workers': { type: 'boolean', default: false },
    unpinned: { type: 'boolean', default: false },
    cli: { type: 'string', default: 'dist' },
  },
});
const ROUNDS = Number(args.rounds);
const ONLY_WORKERS = args['only-workers'];
if (ONLY_WORKERS && args['skip-workers']) throw new Error('--only-workers and --skip-workers: choose one');
const BATCH = Number(args['batch-size']);
if (args.cli !== 'dist' && args.cli !== 'source') throw new Error(`--cli: expected dist or source, got ${args.cli}`);
const CLI = args.cli === 'dist' ? 'dist/cli/main.js' : 'bin/caliper.js';
if (args.cli === 'dist') {
  console.log('building dist/ (npm run build): caliper batch is timed as the installed package runs it');
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
}
const WORK = 'tmp/bench-batch';
const PYTHON = '/usr/bin/python3';
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const loads: string[] = [load()];

// A private copy of fraud-detector version 1 (the example folder's default version may change under other work).
const MODEL = join(WORK, 'fraud_detector');
mkdirSync(join(MODEL, '1'), { recursive: true });
copyFileSync('examples/fraud-detector/model.yaml', join(MODEL, 'model.yaml'));
copyFileSync('examples/fraud-detector/1/model.onnx', join(MODEL, '1', 'model.onnx'));

// The same weights for PyTorch: the ONNX Gemm layers ([in, out] weights) as JSON.
const WEIGHTS = join(WORK, 'fraud-weights.json');
{
  const model = readModelFile(join(MODEL, '1', 'model.onnx'));
  const initializers = new Map(model.graph!.initializer!.map((t) => [t.name!, t]));
  const layers = model
    .graph!.node!.filter((n) => n.opType === 'Gemm')
    .map((n) => {
      const weight = initializers.get(n.input![1]!)!;
      return {
        in: Number(weight.dims![0]),
        out: Number(weight.dims![1]),
        weight: [...tensorToFloat32(weight)],
        bias: [...tensorToFloat32(initializers.get(n.input![2]!)!)],
      };
    });
  writeFileSync(WEIGHTS, JSON.stringify({ layers }));
}

if (!ONLY_WORKERS && spawnSync(PYTHON, ['-c', 'import torch, pandas'], { stdio: 'ignore' }).status !== 0) {
  console.log(
    "installing Debian's python3-torch and python3-pandas with apt-get (the pandas + PyTorch baseline needs them)",
  );
  const apt = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'python3-torch', 'python3-pandas'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (apt.status !== 0) throw new Error('apt-get install python3-torch python3-pandas failed');
}

async function dataFile(rows: number, format: string): Promise<string> {
  const path = `bench/data/fraud-${rows / 1_000_000}m.${format}`;
  if (!existsSync(path)) {
    console.log(`generating ${path}`);
    await generateFraudData({ rows, out: path, seed: 1 });
  }
  return path;
}

interface Timed {
  wallS: number;
  cpuS: number;
  peakRssMiB: number;
  stdout: string;
  /** The one-pass COPY ran as two halves side by side (CALIPER_BATCH_PROFILE's line; a spare core decides it). */
  halves: boolean;
  /** A Parquet output was the input's own column chunks with the predictions added (parquet-stitch.ts). */
  stitched: boolean;
}

/** A whole command as a user runs it: wall time, CPU time and peak RSS from /usr/bin/time. */
function timed(command: string, commandArgs: string[], env: NodeJS.ProcessEnv = {}): Timed {
  const run = spawnSync('/usr/bin/time', ['-f', '__time %e %U %S %M', command, ...commandArgs], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    // Phase lines on stderr (a few /proc reads per phase): they say whether the COPY ran in halves.
    env: { ...process.env, CALIPER_BATCH_PROFILE: '1', ...env },
  });
  const line = run.stderr.split('\n').find((l) => l.startsWith('__time '));
  if (run.status !== 0 || !line)
    throw new Error(`${command} ${commandArgs.join(' ')} failed (${run.status}): ${run.stderr.slice(-2000)}`);
  const [wall, user, sys, rssKiB] = line.split(' ').slice(1).map(Number) as [number, number, number, number];
  return {
    wallS: wall,
    cpuS: user + sys,
    peakRssMiB: rssKiB / 1024,
    stdout: run.stdout,
    halves: run.stderr.includes('scoring copy in two halves'),
    stitched: run.stderr.includes("predictions stitched to the input's columns"),
  };
}

interface Summary {
  rows: number;
  outputRows: number;
  seconds: number;
  rowsPerSecond: number;
  peakRssBytes?: number;
  /** one-pass (one DuckDB COPY scoring as it copies) or parts. */
  path?: string;
}

function caliperBatch(
  input: string,
  output: string,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Timed & { summary: Summary } {
  rmSync(output, { recursive: true, force: true });
  const run = timed(
    process.execPath,
    [
      CLI,
      'batch',
      '--model',
      MODEL,
      '--input',
      input,
      '--output',
      output,
      '--batch-size',
      String(BATCH),
      '--json',
      '--no-progress',
      '--overwrite',
      ...extra,
    ],
    env,
  );
  const summary = JSON.parse(run.stdout.trim().split('\n').pop()!) as Summary;
  if (summary.outputRows !== summary.rows)
    throw new Error(`caliper batch wrote ${summary.outputRows} of ${summary.rows} rows`);
  return { ...run, summary };
}

function pandasJob(input: string, output: string): Timed {
  rmSync(output, { force: true });
  return timed(PYTHON, ['bench/batch-pandas-job.py', input, output, WEIGHTS]);
}

/** The Parquet I/O any batch scorer pays here: DuckDB alone reads the rows and writes them with two constant prediction columns. */
async function ioFloor(input: string, rows: number): Promise<number> {
  const instance = await DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true' });
  const connection = await instance.connect();
  const out = join(WORK, 'floor.parquet');
  const started = performance.now();
  await connection.run(
    `COPY (SELECT *, 0.5::DOUBLE AS fraud_probability, false AS is_fraud FROM read_parquet('${input}')) TO '${out}' (FORMAT parquet)`,
  );
  const perSecond = rows / ((performance.now() - started) / 1000);
  connection.closeSync();
  instance.closeSync();
  rmSync(out, { force: true });
  return perSecond;
}

/** Both jobs' predictions agree (same weights): the largest difference over the first rows of the two CSV outputs. */
async function agreement(caliperCsv: string, pandasCsv: string): Promise<number> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const reader = await connection.runAndReadAll(
    `SELECT max(abs(c.fraud_probability - p.fraud_probability))::DOUBLE FROM (SELECT * FROM read_csv('${caliperCsv}') LIMIT 100000) c JOIN (SELECT * FROM read_csv('${pandasCsv}') LIMIT 100000) p USING (transaction_id)`,
  );
  const diff = reader.getRows()[0]![0] as number;
  connection.closeSync();
  instance.closeSync();
  return diff;
}

const data = {
  csv: ONLY_WORKERS ? '' : await dataFile(1_000_000, 'csv'),
  jsonl: ONLY_WORKERS ? '' : await dataFile(1_000_000, 'jsonl'),
  parquet: await dataFile(1_000_000, 'parquet'),
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rounds = {
  csv: { caliper: [] as Timed[], pandas: [] as Timed[] },
  jsonl: { caliper: [] as Timed[], pandas: [] as Timed[] },
};
const parquet = {
  caliper: [] as (Timed & { summary: Summary })[],
  floor: [] as number[],
  /** The same job with CALIPER_BATCH_STITCH=off: every input column decoded and written again, as the floor does. */
  rewritten: [] as (Timed & { summary: Summary })[],
};
let maxDifference = NaN;

for (let round = 0; round < (ONLY_WORKERS ? 0 : ROUNDS); round++) {
  for (const format of ['csv', 'jsonl'] as const) {
    const c = caliperBatch(data[format], join(WORK, `scored-1m.${format}`));
    const p = pandasJob(data[format], join(WORK, `pandas-1m.${format}`));
    rounds[format].caliper.push(c);
    rounds[format].pandas.push(p);
    loads.push(load());
    console.log(
      `round ${round + 1} ${format}: caliper (${c.summary.path} path${c.halves ? ', halves' : ''}) ${c.wallS.toFixed(1)} s wall (${c.cpuS.toFixed(1)} s CPU, ${Math.round(c.peakRssMiB)} MiB), pandas + PyTorch ${p.wallS.toFixed(1)} s wall (${p.cpuS.toFixed(1)} s CPU, ${Math.round(p.peakRssMiB)} MiB) → ${(p.wallS / c.wallS).toFixed(2)}x; load ${load()}`,
    );
  }
  if (round === 0) maxDifference = await agreement(join(WORK, 'scored-1m.csv'), join(WORK, 'pandas-1m.csv'));
  parquet.floor.push(await ioFloor(data.parquet, 1_000_000));
  const c = caliperBatch(data.parquet, join(WORK, 'scored-1m.parquet'));
  parquet.caliper.push(c);
  const r = caliperBatch(data.parquet, join(WORK, 'scored-1m.parquet'), [], { CALIPER_BATCH_STITCH: 'off' });
  parquet.rewritten.push(r);
  const floor = parquet.floor.at(-1)!;
  console.log(
    `round ${round + 1} parquet: caliper (${c.summary.path} path${c.halves ? ', halves' : ''}${c.stitched ? ', stitched' : ''}) ${Math.round(c.summary.rowsPerSecond)} rows/s (${c.wallS.toFixed(1)} s whole command), I/O floor ${Math.round(floor)} rows/s → ${(c.summary.rowsPerSecond / floor).toFixed(2)}x; every column rewritten ${Math.round(r.summary.rowsPerSecond)} rows/s → ${(r.summary.rowsPerSecond / floor).toFixed(2)}x; load ${load()}`,
  );
}

const memory: Record<string, { peakRssMiB1m: number; peakRssMiB5m: number | null; ratio: number | null }> = {};
for (const format of ONLY_WORKERS ? [] : (['csv', 'jsonl', 'parquet'] as const)) {
  const oneM = format === 'parquet' ? parquet.caliper[0]! : rounds[format].caliper[0]!;
  memory[format] = { peakRssMiB1m: Math.round(oneM.peakRssMiB), peakRssMiB5m: null, ratio: null };
  if (args['skip-5m']) continue;
  const fiveM = caliperBatch(await dataFile(5_000_000, format), join(WORK, `scored-5m.${format}`));
  rmSync(join(WORK, `scored-5m.${format}`), { force: true });
  memory[format] = {
    peakRssMiB1m: Math.round(oneM.peakRssMiB),
    peakRssMiB5m: Math.round(fiveM.peakRssMiB),
    ratio: fiveM.peakRssMiB / oneM.peakRssMiB,
  };
  loads.push(load());
  console.log(
    `${format} 5M rows: peak ${Math.round(fiveM.peakRssMiB)} MiB vs ${Math.round(oneM.peakRssMiB)} MiB at 1M (${(fiveM.peakRssMiB / oneM.peakRssMiB).toFixed(2)}x); load ${load()}`,
  );
}

/** Busy and total CPU ms of the whole machine so far, all cores (/proc/stat). */
function machineCpuMs(): { busy: number; total: number } {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  // USER_HZ is 100 on Linux: a tick is 10 ms. Idle and iowait are not busy.
  return { busy: (total - ticks[3]! - ticks[4]!) * 10, total: total * 10 };
}

/** CPU ms (user + system, all threads) of a live process so far (/proc). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

// One worker vs two on a shared queue; workers are started (and their model loaded by a warm-up job) before timing.
// Each timed run notes the share of the machine's cores that processes other than the submitter and the workers took
// while it ran (other engineers' tests and builds, the private redis-server): a round whose two runs saw different
// shares is a round the machine decided, not the workers.
const scalingRuns = [
  { size: '1m', input: data.parquet, shardRows: '100000' },
  ...(args['skip-5m'] ? [] : [{ size: '5m', input: await dataFile(5_000_000, 'parquet'), shardRows: '250000' }]),
];
const scaling = new Map(
  scalingRuns.map((r) => [
    r.size,
    { one: [] as number[], two: [] as number[], oneOtherCpu: [] as number[], twoOtherCpu: [] as number[] },
  ]),
);
if (!args['skip-workers']) {
  // As the test suite's setup does: Debian's redis-server, installed with apt-get when missing.
  ensureDebianPackages(['redis-server']);
  const redis = await startPrivateRedis();
  const startWorkers = (n: number): Promise<ChildProcess[]> =>
    Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<ChildProcess>((resolve, reject) => {
            // One worker per core, each pinned to its own (caliper worker --cpu), the single worker too.
            const pin = args.unpinned ? [] : ['--cpu', String(i % cpus().length)];
            const child = spawn(process.execPath, [CLI, 'worker', '--queue', redis.url, ...pin], {
              stdio: ['ignore', 'ignore', 'pipe'],
            });
            let stderr = '';
            child.stderr!.on('data', (d: Buffer) => {
              stderr += d.toString();
              if (stderr.includes('waiting for shards')) resolve(child);
            });
            child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${stderr}`)));
          }),
      ),
    );
  const stopWorkers = (children: ChildProcess[]): Promise<unknown[]> =>
    Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.removeAllListeners('exit');
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
          }),
      ),
    );
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const { size, input, shardRows } of scalingRuns) {
        const counts = [
          ['one', 1],
          ['two', 2],
        ] as const;
        // Alternating which goes first, so that a drift of the machine's load over a round falls on both alike.
        for (const [label, n] of round % 2 === 0 ? counts : [...counts].reverse()) {
          const children = await startWorkers(n);
          caliperBatch(data.parquet, join(WORK, 'warm'), [
            '--queue',
            redis.url,
            '--chunk-rows',
            '250000',
            '--keep',
            'transaction_id',
          ]);
          const workersBefore = children.map((c) => processCpuMs(c.pid!));
          const machineBefore = machineCpuMs();
          const run = caliperBatch(input, join(WORK, `workers-${label}`), [
            '--queue',
            redis.url,
            '--chunk-rows',
            shardRows,
            '--format',
            'parquet',
          ]);
          const machineAfter = machineCpuMs();
          const workersCpu = children.reduce((sum, c, i) => sum + processCpuMs(c.pid!) - workersBefore[i]!, 0);
          const otherCpu =
            Math.max(0, machineAfter.busy - machineBefore.busy - workersCpu - run.cpuS * 1000) /
            (machineAfter.total - machineBefore.total);
          scaling.get(size)![label].push(run.summary.rowsPerSecond);
          scaling.get(size)![`${label}OtherCpu`].push(otherCpu);
          const { one, two } = scaling.get(size)!;
          const paired =
            one.length === two.length ? ` (two ÷ one this round ${(two.at(-1)! / one.at(-1)!).toFixed(2)})` : '';
          console.log(
            `round ${round + 1} ${size}: ${label} worker(s) ${Math.round(run.summary.rowsPerSecond)} rows/s${paired}; other processes ${(otherCpu * 100).toFixed(0)}% of the cores (whole command); load ${load()}`,
          );
          await stopWorkers(children);
        }
      }
    }
  } finally {
    await redis.dispose();
  }
  loads.push(load());
  for (const { size } of scalingRuns) {
    const { one, two } = scaling.get(size)!;
    const ratios = two.map((t, i) => t / one[i]!);
    console.log(
      `${size}: two ÷ one per round ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ${median(ratios).toFixed(2)} (median(two) ÷ median(one) ${(median(two) / median(one)).toFixed(2)})`,
    );
  }
}

const wall = (xs: Timed[]): number => median(xs.map((x) => x.wallS));
const cpu = (xs: Timed[]): number => median(xs.map((x) => x.cpuS));
const result = {
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    note: 'shared with other engineers running tests and benchmarks; ratios are measured in the same run',
  },
  command: `node --import tsx bench/batch.ts --rounds ${ROUNDS}${args['skip-5m'] ? ' --skip-5m' : ''}${args['skip-workers'] ? ' --skip-workers' : ''}${ONLY_WORKERS ? ' --only-workers' : ''}${args.unpinned ? ' --unpinned' : ''} --cli ${args.cli}`,
  workersPinned: !args.unpinned,
  cli: `node ${CLI}`,
  loadAverages: loads,
  batchSize: BATCH,
  rounds: ROUNDS,
  predictionsMaxDifferenceVsPyTorch: ONLY_WORKERS ? null : maxDifference,
  csv: ONLY_WORKERS
    ? null
    : {
        caliperWallS: rounds.csv.caliper.map((t) => t.wallS),
        pandasWallS: rounds.csv.pandas.map((t) => t.wallS),
        caliperCpuS: rounds.csv.caliper.map((t) => t.cpuS),
        pandasCpuS: rounds.csv.pandas.map((t) => t.cpuS),
        caliperRowsPerSecondWholeCommand: Math.round(1_000_000 / wall(rounds.csv.caliper)),
        pandasRowsPerSecondWholeCommand: Math.round(1_000_000 / wall(rounds.csv.pandas)),
        vsPandasWall: wall(rounds.csv.pandas) / wall(rounds.csv.caliper),
        vsPandasCpu: cpu(rounds.csv.pandas) / cpu(rounds.csv.caliper),
      },
  jsonl: ONLY_WORKERS
    ? null
    : {
        caliperWallS: rounds.jsonl.caliper.map((t) => t.wallS),
        pandasWallS: rounds.jsonl.pandas.map((t) => t.wallS),
        caliperCpuS: rounds.jsonl.caliper.map((t) => t.cpuS),
        pandasCpuS: rounds.jsonl.pandas.map((t) => t.cpuS),
        vsPandasWall: wall(rounds.jsonl.pandas) / wall(rounds.jsonl.caliper),
        vsPandasCpu: cpu(rounds.jsonl.pandas) / cpu(rounds.jsonl.caliper),
      },
  parquet: ONLY_WORKERS
    ? null
    : {
        caliperRowsPerSecond: parquet.caliper.map((c) => Math.round(c.summary.rowsPerSecond)),
        caliperWholeCommandS: parquet.caliper.map((c) => c.wallS),
        caliperHalves: parquet.caliper.map((c) => c.halves),
        caliperStitched: parquet.caliper.map((c) => c.stitched),
        ioFloorRowsPerSecond: parquet.floor.map(Math.round),
        // Each round's floor and job run back to back under the same load: the headline is the median of those ratios.
        roundRatios: parquet.caliper.map((c, i) => Number((c.summary.rowsPerSecond / parquet.floor[i]!).toFixed(3))),
        vsIoFloor: median(parquet.caliper.map((c, i) => c.summary.rowsPerSecond / parquet.floor[i]!)),
        medianVsMedian: median(parquet.caliper.map((c) => c.summary.rowsPerSecond)) / median(parquet.floor),
        // CALIPER_BATCH_STITCH=off, run right after each round's job: the output written the way the floor writes it.
        rewrittenRowsPerSecond: parquet.rewritten.map((c) => Math.round(c.summary.rowsPerSecond)),
        rewrittenRoundRatios: parquet.rewritten.map((c, i) =>
          Number((c.summary.rowsPerSecond / parquet.floor[i]!).toFixed(3)),
        ),
        rewrittenVsIoFloor: median(parquet.rewritten.map((c, i) => c.summary.rowsPerSecond / parquet.floor[i]!)),
      },
  peakRss: ONLY_WORKERS ? null : memory,
  workers:
    scaling.get('1m')!.one.length > 0
      ? Object.fromEntries(
          scalingRuns.map(({ size, shardRows }) => {
            const { one, two, oneOtherCpu, twoOtherCpu } = scaling.get(size)!;
            return [
              size,
              {
                shardRows: Number(shardRows),
                oneRowsPerSecond: one.map(Math.round),
                twoRowsPerSecond: two.map(Math.round),
                // Share of the cores other processes took during each timed command (/proc/stat less the submitter's
                // and the workers' CPU).
                oneOtherCpuShare: oneOtherCpu.map((x) => Number(x.toFixed(3))),
                twoOtherCpuShare: twoOtherCpu.map((x) => Number(x.toFixed(3))),
                roundRatios: two.map((t, i) => Number((t / one[i]!).toFixed(3))),
                // The median of the same-round ratios: a round's two runs share its load (they alternate which goes
                // first), where median(two) ÷ median(one) may pair a quiet round's run with a busy one's.
                twoVsOne: median(two.map((t, i) => t / one[i]!)),
                medianTwoVsMedianOne: median(two) / median(one),
              },
            ];
          }),
        )
      : null,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  ONLY_WORKERS ? 'bench/results/batch-workers.json' : 'bench/results/batch.json',
  `${JSON.stringify(result, null, 2)}\n`,
);
console.log(JSON.stringify(result, null, 2));
