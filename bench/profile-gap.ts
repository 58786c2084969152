/*
 * Issue 17's item-by-item comparison with the floor, in one run: for the fraud model and the 784-1024-1024-10 MLP
 * (bench/serving-mlp.ts, under the fashion example's model.yaml, as bench/serving.ts serves it), the bare route
 * bench/serving.ts uses (bench/echo-server.ts: same body, same answer) and Caliper, each on core 0, take turns under
 * the same 32-connection closed loop from this process on core 1: per round a window of each without the profiler
 * (CPU per request from /proc), then a profiled window of each (V8's sampling profiler, bench/window-profiler.mjs),
 * floor first. Every busy sample is put in a category (bench/profile-categories.ts); a category's µs of CPU per
 * request is its share of the profiled samples times the server's unprofiled main-thread CPU per request of the same
 * run (/proc/PID/task/PID/stat: V8 samples only the main thread; the profiler adds 20–50 % of CPU, so its own µs are
 * kept only in the JSON), and the other threads' CPU (V8's GC and compiler helpers, libuv; /proc) is a row of its own,
 * so the rows add up to the process's CPU per request. The floor's model cost is raw ONNX
 * Runtime's CPU per row at the batch sizes Caliper formed in its unprofiled windows (bench/raw-ort.ts on core 0),
 * counted in the "ORT native run" row: floor = bare route + raw ORT per row, as bench/serving.ts defines it. Beside
 * it, the run call's median µs per row in that tight loop and with server-like JavaScript between calls (raw-ort.ts
 * --cold): how much of Caliper's dearer run any server pays for running the model between requests.
 *
 *   node --import tsx bench/profile-gap.ts [--seconds 4] [--rounds 2] [--settle 20] [fraud] [mlp]
 *
 * (both models unless one is named; ≈ 2.5 min with the defaults). Prints a Markdown table per model: floor, Caliper,
 * the difference and its share of the gap, per category; writes bench/results/profile-gap.json (with the profiled µs,
 * the batch sizes, and each category's heaviest functions) and the profiles under bench/data/profiles/gap-*.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startClosedLoop } from '../src/bench/load-generator.ts';
import { HttpLoadTarget } from '../src/bench/load-target.ts';
import type { RequestData } from '../src/bench/request-data.ts';
import { freePort } from '../src/system/free-port.ts';
import { numberOption } from './bench-options.ts';
import { addProfile, CATEGORIES, type Category, type CategorySamples, emptySamples } from './profile-categories.ts';
import { cpuSeconds, threadCpuSeconds } from './process-cpu.ts';
import { exampleModelFolder, fashionRequests, fraudRequests } from './serving-requests.ts';
import { servingMlp } from './serving-mlp.ts';

const root = join(import.meta.dirname, '..');
const SECONDS = numberOption('--seconds', 4);
const ROUNDS = numberOption('--rounds', 2);
const SETTLE_SECONDS = numberOption('--settle', 20);
const CONNECTIONS = 32;
const named = ['fraud', 'mlp'].filter((m) => process.argv.includes(m));
const MODELS = named.length > 0 ? named : ['fraud', 'mlp'];
const dataDir = join(root, 'bench/data/profile-gap');
const profileDir = join(root, 'bench/data/profiles');
mkdirSync(profileDir, { recursive: true });

execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
  readyAt: number;
}

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

/** A server on core 0 with the window profiler preloaded and an IPC channel to drive it. */
async function startServer(name: string, args: string[]): Promise<Server> {
  const port = await freePort();
  const child = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      '--import',
      './bench/window-profiler.mjs',
      ...args.map((a) => a.replace('{port}', String(port))),
    ],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' } },
  );
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/v2/health/ready`)).ok) return { name, url, child, readyAt: performance.now() };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${name} not ready`);
}

async function stop(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    server.child.once('exit', () => resolve());
    server.child.kill('SIGINT');
  });
}

/** Sends a message to the server's window profiler and waits for its answer. */
function profiler(server: Server, message: Record<string, string>): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      if (typeof m === 'object' && m !== null && 'profiled' in m) {
        server.child.off('message', onMessage);
        resolve();
      }
    };
    server.child.on('message', onMessage);
    server.child.send(message);
  });
}

interface ModelUnderTest {
  key: string;
  name: string;
  path: string;
  repo: string;
  onnx: string;
  input: string;
  width: number;
  data: RequestData;
}

/** Batches run per size, and the rows and wall ns of all runs, from Caliper's statistics. */
async function batchCounts(
  url: string,
  model: string,
): Promise<{ counts: Record<string, number>; rows: number; ns: number }> {
  const body = (await (await fetch(`${url}/v2/models/${model}/stats`)).json()) as {
    model_stats: { batch_stats: { batch_size: number; compute_infer: { count: number; ns: number } }[] }[];
  };
  const stats = body.model_stats[0]!.batch_stats;
  return {
    counts: Object.fromEntries(stats.map((b) => [String(b.batch_size), b.compute_infer.count])),
    rows: stats.reduce((sum, b) => sum + b.batch_size * b.compute_infer.count, 0),
    ns: stats.reduce((sum, b) => sum + b.compute_infer.ns, 0),
  };
}

function addCounts(into: Record<string, number>, after: Record<string, number>, before: Record<string, number>): void {
  for (const [size, count] of Object.entries(after)) {
    const n = count - (before[size] ?? 0);
    if (n > 0) into[size] = (into[size] ?? 0) + n;
  }
}

interface WindowTally {
  requests: number;
  cpuUs: number;
  /** CPU µs by thread name (`main`, `V8 DefaultWorke`, `libuv-worker`, …), threads alive at the window's end. */
  threadUs: Record<string, number>;
  seconds: number;
  windows: { rps: number; cpuUsPerRequest: number; mainThreadCpuUsPerRequest: number }[];
}
const emptyTally = (): WindowTally => ({ requests: 0, cpuUs: 0, threadUs: {}, seconds: 0, windows: [] });

/** One load window on `server`: 1 s warm-up, then SECONDS measured; profiled into `file` when given. */
async function window(
  server: Server,
  model: ModelUnderTest,
  tally: WindowTally,
  profile?: { file: string; samples: CategorySamples },
): Promise<void> {
  const load = startClosedLoop(new HttpLoadTarget(server.url, model.path, model.data, false), CONNECTIONS);
  await sleep(1000);
  if (profile) await profiler(server, { profile: 'start' });
  load.nextWindow();
  const pid = server.child.pid!;
  const cpuBefore = cpuSeconds(pid);
  const threadsBefore = threadCpuSeconds(pid);
  await sleep(SECONDS * 1000);
  const w = load.nextWindow().summarize();
  const cpu = cpuSeconds(pid) - cpuBefore;
  let mainUs = 0;
  for (const [tid, { name, seconds }] of threadCpuSeconds(pid)) {
    const us = (seconds - (threadsBefore.get(tid)?.seconds ?? 0)) * 1e6;
    tally.threadUs[name] = (tally.threadUs[name] ?? 0) + us;
    if (name === 'main') mainUs = us;
  }
  if (profile) await profiler(server, { profile: 'stop', file: profile.file });
  await load.stop();
  if (w.errors > 0) throw new Error(`${server.name}: ${w.errors} errors in a window`);
  tally.requests += w.requests;
  tally.cpuUs += cpu * 1e6;
  tally.seconds += SECONDS;
  tally.windows.push({
    rps: Math.round(w.throughput),
    cpuUsPerRequest: r1((cpu * 1e6) / w.requests),
    mainThreadCpuUsPerRequest: r1(mainUs / w.requests),
  });
  if (profile) addProfile(profile.file, profile.samples);
}

/** Raw ORT CPU µs per row at the sizes carrying ≥ 2 % of Caliper's rows (at most six), weighted by rows. */
function ortAtFormedSizes(
  model: ModelUnderTest,
  batches: Record<string, number>,
): {
  cpuUsPerRow: number;
  /** Median wall µs per row of the run call alone: in a tight loop, and with server-like JS between calls. */
  runUsPerRow: number;
  runUsPerRowCold: number;
  meanBatch: number;
  measured: Record<string, number>;
} {
  const sizes = Object.entries(batches).map(([size, count]) => ({ size: Number(size), rows: Number(size) * count }));
  const rows = sizes.reduce((sum, s) => sum + s.rows, 0);
  const kept = sizes
    .filter((s) => s.rows >= rows * 0.02)
    .sort((a, b) => b.rows - a.rows)
    .slice(0, 6);
  const args = [
    'bench/raw-ort.ts',
    model.onnx,
    model.input,
    String(model.width),
    '0.5',
    kept.map((s) => s.size).join(','),
    '--cold',
  ];
  const out = execFileSync('taskset', ['-c', '0', process.execPath, '--import', 'tsx', ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  const perSize = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
  const keptRows = kept.reduce((sum, s) => sum + s.rows, 0);
  let cpuUs = 0;
  let runUs = 0;
  let runUsCold = 0;
  const measured: Record<string, number> = {};
  for (const s of kept) {
    const perRow = perSize[`batch${s.size}_cpu_us_per_row`]!;
    measured[String(s.size)] = r3(perRow);
    cpuUs += (perRow * s.rows) / keptRows;
    runUs += (perSize[`batch${s.size}_run_us_per_row`]! * s.rows) / keptRows;
    runUsCold += (perSize[`batch${s.size}_run_us_per_row_cold`]! * s.rows) / keptRows;
  }
  const runs = Object.values(batches).reduce((a, b) => a + b, 0);
  return {
    cpuUsPerRow: r3(cpuUs),
    runUsPerRow: r3(runUs),
    runUsPerRowCold: r3(runUsCold),
    meanBatch: r3(rows / Math.max(1, runs)),
    measured,
  };
}

interface ServerResult {
  plain: WindowTally;
  profiled: WindowTally;
  samples: CategorySamples;
}

const perRequest = (t: WindowTally): number => t.cpuUs / Math.max(1, t.requests);
const mainPerRequest = (t: WindowTally): number => (t.threadUs.main ?? 0) / Math.max(1, t.requests);
/** CPU µs per request of each thread name, the main thread's included. */
const threadsPerRequest = (t: WindowTally): Record<string, number> =>
  Object.fromEntries(Object.entries(t.threadUs).map(([name, us]) => [name, r1(us / Math.max(1, t.requests))]));
const OTHER_THREADS = 'other threads (V8 GC and compiler helpers, libuv; /proc)';

/**
 * µs of CPU per request per category: the profile's shares of the CPU per request given (V8 samples the main thread
 * only, so the main thread's CPU: the other threads are a row of their own).
 */
function categoryUs(result: ServerResult, cpuUsPerRequest: number): Record<Category, number> {
  const out = {} as Record<Category, number>;
  for (const c of CATEGORIES) out[c] = (result.samples.samples[c] / Math.max(1, result.samples.busy)) * cpuUsPerRequest;
  return out;
}

const topFunctions = (samples: CategorySamples, scale: number): Record<string, Record<string, number>> =>
  Object.fromEntries(
    CATEGORIES.map((c) => [
      c,
      Object.fromEntries(
        Object.entries(samples.functions[c])
          .sort((a, b) => b[1] - a[1])
          .slice(0, 6)
          .map(([fn, n]) => [fn, r1((n / Math.max(1, samples.busy)) * scale)]),
      ),
    ]),
  );

const started = new Date();
const loadAverages = [loadAverage()];
console.log(
  `profile-gap: ${MODELS.join(' + ')}, ${ROUNDS} rounds x ${SECONDS} s per window, ${CONNECTIONS} connections; servers on core 0, load on core 1; load average ${loadAverages[0]}`,
);

const models: ModelUnderTest[] = [];
if (MODELS.includes('fraud')) {
  const repo = exampleModelFolder(root, dataDir, 'fraud', 'fraud-detector', 'fraud_detector', { cache: 'false' });
  models.push({
    key: 'fraud',
    name: 'fraud_detector',
    path: '/models/fraud_detector/predict',
    repo,
    onnx: join(repo, 'fraud_detector/1/model.onnx'),
    input: 'features',
    width: 10,
    data: fraudRequests(),
  });
}
if (MODELS.includes('mlp')) {
  const onnx = await servingMlp();
  const repo = exampleModelFolder(root, dataDir, 'mlp-1024x2', 'fashion-mnist', 'fashion_mnist', { cache: 'false' });
  cpSync(onnx, join(repo, 'fashion_mnist/1/model.onnx'));
  models.push({
    key: 'mlp_1024x2',
    name: 'fashion_mnist',
    path: '/models/fashion_mnist/predict',
    repo,
    onnx,
    input: 'pixels',
    width: 784,
    data: fashionRequests(root),
  });
}

// Every server starts first and settles together (a fresh server's first ≈ 20 s hold start-up's garbage collections).
const pairs: { model: ModelUnderTest; floor: Server; caliper: Server }[] = [];
for (const model of models) {
  const floor = await startServer(`floor-${model.key}`, ['--import', 'tsx', 'bench/echo-server.ts', '{port}']);
  const caliper = await startServer(`caliper-${model.key}`, [
    'bin/caliper.js',
    'serve',
    model.repo,
    '--port',
    '{port}',
  ]);
  pairs.push({ model, floor, caliper });
}
for (const { model, floor, caliper } of pairs)
  for (const server of [floor, caliper]) {
    const load = startClosedLoop(new HttpLoadTarget(server.url, model.path, model.data, false), CONNECTIONS);
    await sleep(2000);
    await load.stop();
  }
const youngest = Math.max(...pairs.flatMap((p) => [p.floor.readyAt, p.caliper.readyAt]));
await sleep(Math.max(0, youngest + SETTLE_SECONDS * 1000 - performance.now()));

const report: Record<string, unknown> = {};
const tables: string[] = [];
for (const { model, floor, caliper } of pairs) {
  const results: Record<'floor' | 'caliper', ServerResult> = {
    floor: { plain: emptyTally(), profiled: emptyTally(), samples: emptySamples() },
    caliper: { plain: emptyTally(), profiled: emptyTally(), samples: emptySamples() },
  };
  const plainBatches: Record<string, number> = {};
  const profiledBatches: Record<string, number> = {};
  // Caliper's own model runs in its unprofiled windows (its batch statistics: stacking and splitting included).
  const caliperRuns = { rows: 0, ns: 0 };
  const caliperWindow = async (into: Record<string, number>, profile?: { file: string; samples: CategorySamples }) => {
    const before = await batchCounts(caliper.url, model.name);
    await window(caliper, model, results.caliper[profile ? 'profiled' : 'plain'], profile);
    const after = await batchCounts(caliper.url, model.name);
    addCounts(into, after.counts, before.counts);
    if (!profile) {
      caliperRuns.rows += after.rows - before.rows;
      caliperRuns.ns += after.ns - before.ns;
    }
  };
  for (let round = 0; round < ROUNDS; round++) {
    await window(floor, model, results.floor.plain);
    await caliperWindow(plainBatches);
    const file = (who: string): string => join(profileDir, `gap-${model.key}-${who}-${round + 1}.cpuprofile`);
    await window(floor, model, results.floor.profiled, { file: file('floor'), samples: results.floor.samples });
    await caliperWindow(profiledBatches, { file: file('caliper'), samples: results.caliper.samples });
    console.log(
      `${model.key} round ${round + 1}: floor ${JSON.stringify(results.floor.plain.windows.at(-1))} profiled ${JSON.stringify(results.floor.profiled.windows.at(-1))}; ` +
        `caliper ${JSON.stringify(results.caliper.plain.windows.at(-1))} profiled ${JSON.stringify(results.caliper.profiled.windows.at(-1))}`,
    );
  }
  const ort = ortAtFormedSizes(model, plainBatches);
  const caliperRunUsPerRow = r3(caliperRuns.ns / 1000 / Math.max(1, caliperRuns.rows));
  const bareCpu = perRequest(results.floor.plain);
  const caliperCpu = perRequest(results.caliper.plain);
  const bareMain = mainPerRequest(results.floor.plain);
  const caliperMain = mainPerRequest(results.caliper.plain);
  const floorUs: Record<string, number> = categoryUs(results.floor, bareMain);
  floorUs['ORT native run']! += ort.cpuUsPerRow;
  floorUs[OTHER_THREADS] = bareCpu - bareMain;
  const caliperUs: Record<string, number> = categoryUs(results.caliper, caliperMain);
  caliperUs[OTHER_THREADS] = caliperCpu - caliperMain;
  const floorCpu = bareCpu + ort.cpuUsPerRow;
  const gap = caliperCpu - floorCpu;
  const rows = [...CATEGORIES, OTHER_THREADS].map((c) => ({
    category: c,
    floorUs: r1(floorUs[c]!),
    caliperUs: r1(caliperUs[c]!),
    differenceUs: r1(caliperUs[c]! - floorUs[c]!),
    shareOfGap: r3((caliperUs[c]! - floorUs[c]!) / gap),
  }));
  const profiledUs = (who: 'floor' | 'caliper'): Record<string, number> =>
    Object.fromEntries(
      Object.entries(categoryUs(results[who], perRequest(results[who].profiled))).map(([c, us]) => [c, r1(us)]),
    );
  report[model.key] = {
    model: model.key === 'fraud' ? 'fraud MLP 10-64-64-1' : 'MLP 784-1024-1024-10 (fashion example model.yaml)',
    cpu_us_per_request_unprofiled: { bare: r1(bareCpu), floor: r1(floorCpu), caliper: r1(caliperCpu) },
    cpu_us_per_request_by_thread_unprofiled: {
      bare: threadsPerRequest(results.floor.plain),
      caliper: threadsPerRequest(results.caliper.plain),
    },
    cpu_us_per_request_profiled: {
      bare: r1(perRequest(results.floor.profiled)),
      caliper: r1(perRequest(results.caliper.profiled)),
    },
    profiler_inflation: {
      bare: r3(perRequest(results.floor.profiled) / bareCpu),
      caliper: r3(perRequest(results.caliper.profiled) / caliperCpu),
    },
    caliper_cpu_vs_floor: r3(floorCpu / caliperCpu),
    gap_us_per_request: r1(gap),
    raw_ort_at_formed_sizes: ort,
    caliper_run_us_per_row_unprofiled: caliperRunUsPerRow,
    caliper_batches_unprofiled: plainBatches,
    caliper_batches_profiled: profiledBatches,
    windows: {
      floor: { unprofiled: results.floor.plain.windows, profiled: results.floor.profiled.windows },
      caliper: { unprofiled: results.caliper.plain.windows, profiled: results.caliper.profiled.windows },
    },
    busy_samples: { floor: results.floor.samples.busy, caliper: results.caliper.samples.busy },
    categories: rows,
    categories_profiled_us: { floor: profiledUs('floor'), caliper: profiledUs('caliper') },
    top_functions_us: {
      floor: topFunctions(results.floor.samples, bareMain),
      caliper: topFunctions(results.caliper.samples, caliperMain),
    },
  };
  const lines = [
    `${model.key}: CPU µs/request unprofiled bare ${r1(bareCpu)} + raw ORT ${ort.cpuUsPerRow}/row (sizes ${JSON.stringify(ort.measured)}, mean batch ${ort.meanBatch}; the run call alone ${ort.runUsPerRow} µs/row in a tight loop, ${ort.runUsPerRowCold} with server-like JS between calls; Caliper's own runs ${caliperRunUsPerRow} µs/row) = floor ${r1(floorCpu)}, Caliper ${r1(caliperCpu)} (floor ÷ Caliper ${r3(floorCpu / caliperCpu)}, gap ${r1(gap)} µs); profiler inflation bare ${r3(perRequest(results.floor.profiled) / bareCpu)}x, Caliper ${r3(perRequest(results.caliper.profiled) / caliperCpu)}x; main thread bare ${r1(bareMain)}, Caliper ${r1(caliperMain)} µs; by thread ${JSON.stringify({ bare: threadsPerRequest(results.floor.plain), caliper: threadsPerRequest(results.caliper.plain) })}`,
    '',
    '| category | floor µs | Caliper µs | Caliper − floor | share of gap |',
    '|---|---|---|---|---|',
    ...rows
      .filter((r) => r.floorUs !== 0 || r.caliperUs !== 0)
      .map(
        (r) =>
          `| ${r.category} | ${r.floorUs.toFixed(1)} | ${r.caliperUs.toFixed(1)} | ${r.differenceUs.toFixed(1)} | ${(r.shareOfGap * 100).toFixed(0)} % |`,
      ),
    `| total | ${r1(floorCpu).toFixed(1)} | ${r1(caliperCpu).toFixed(1)} | ${r1(gap).toFixed(1)} | 100 % |`,
  ];
  tables.push(lines.join('\n'));
  console.log(`\n${lines.join('\n')}\n`);
  await Promise.all([stop(floor), stop(caliper)]);
}
loadAverages.push(loadAverage());
const seconds = Math.round((Date.now() - started.getTime()) / 1000);
const result = {
  command: `node --import tsx bench/profile-gap.ts --seconds ${SECONDS} --rounds ${ROUNDS} --settle ${SETTLE_SECONDS} ${MODELS.join(' ')}`,
  machine: '2 vCPU shared; servers taskset -c 0, load generator (src/bench, raw sockets) taskset -c 1',
  started: started.toISOString(),
  duration_s: seconds,
  load_average_before_after: loadAverages,
  method:
    'per round: floor, Caliper unprofiled (CPU from /proc), then floor, Caliper profiled (V8 sampling, 200 µs); a category = its share of the busy samples × the unprofiled main-thread CPU per request, the other threads a row of their own; the floor adds raw ORT CPU per row at the sizes Caliper formed unprofiled',
  ...report,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/profile-gap.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(`done in ${seconds} s; load average ${loadAverages.join(' → ')}; bench/results/profile-gap.json`);
