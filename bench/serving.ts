/*
 * Online serving latency benchmark (issue 3 targets), all figures as ratios to baselines measured in the same run.
 *
 *   node --import tsx bench/serving.ts [--seconds 5] [--rounds 3] [--profile]
 *
 * Servers run pinned to core 0 (`taskset -c 0`), this process (the load generator) pins itself to core 1.
 *   1. throughput at 32 connections (autocannon), interleaved rounds: bare fastify route (same body, same JSON,
 *      no model) vs Caliper POST /models/fraud_detector/predict with batching on and off; raw ONNX Runtime
 *      in-process (same model, batch 1 and batched) on core 0 as the ceiling;
 *   2. fashion-mnist: batching on vs off at 32 connections (throughput and p99);
 *   3. open loop: fraud_detector at half its measured peak, constant rate, p99;
 *   4. server overhead (total − inference) median from /v2/models/fraud_detector/stats.
 * With --profile, a Caliper server runs under --cpu-prof during a 32-connection run and the top self-time
 * functions are reported. Results: bench/results/serving.json.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { openLoop } from './open-loop.ts';

const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const SECONDS = option('--seconds', 5);
const ROUNDS = option('--rounds', 3);
const PROFILE = args.includes('--profile');
const CONNECTIONS = 32;
const dataDir = join(root, 'bench/data/serving');

execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A model folder holding version 1 of an example with model.yaml lines replaced. */
function modelFolder(variant: string, example: string, name: string, replace: Record<string, string>): string {
  const repo = join(dataDir, variant);
  const dir = join(repo, name);
  rmSync(repo, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'examples', example, '1'), join(dir, '1'), { recursive: true });
  let yaml = readFileSync(join(root, 'examples', example, 'model.yaml'), 'utf8');
  for (const [key, value] of Object.entries(replace)) {
    const line = new RegExp(`^${key}:.*$`, 'm');
    yaml = line.test(yaml) ? yaml.replace(line, `${key}: ${value}`) : `${yaml}\n${key}: ${value}\n`;
  }
  writeFileSync(join(dir, 'model.yaml'), yaml);
  return repo;
}

interface Server { name: string; url: string; child: ChildProcess }

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/v2/health/ready`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready`);
}

async function startServer(name: string, command: string[], env: Record<string, string> = {}): Promise<Server> {
  const port = await freePort();
  const child = spawn('taskset', ['-c', '0', process.execPath, ...command.map((c) => c.replace('{port}', String(port)))], {
    cwd: root, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CALIPER_LOG_LEVEL: 'warn', ...env },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child);
  return { name, url, child };
}

const caliper = (repo: string, extra: string[] = []): string[] => [...extra, 'bin/caliper.js', 'serve', repo, '--port', '{port}'];

async function stop(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    server.child.once('exit', () => resolve());
    server.child.kill('SIGINT');
  });
}

interface LoadResult { rps: number; p50Ms: number; p99Ms: number; non2xx: number; errors: number }

async function closedLoop(url: string, path: string, body: string, seconds = SECONDS, connections = CONNECTIONS): Promise<LoadResult> {
  const result = await autocannon({
    url: url + path, connections, duration: seconds, method: 'POST', body, headers: { 'content-type': 'application/json' },
  });
  return { rps: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

function rawOrt(model: string, input: string, width: number): Record<string, number> {
  const out = execFileSync('taskset', ['-c', '0', process.execPath, '--import', 'tsx', 'bench/raw-ort.ts', model, input, String(width), '2'], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

async function stats(url: string, model: string): Promise<{ overheadP50Us: number | null; totalP50Us: number | null; stagesMeanUs: Record<string, number> }> {
  const body = await (await fetch(`${url}/v2/models/${model}/stats`)).json() as {
    model_stats: { stages: Record<string, { count: number; ns: number }>; latency_us: { total: { p50: number | null }; overhead: { p50: number | null } } }[];
  };
  const s = body.model_stats[0]!;
  const stagesMeanUs = Object.fromEntries(Object.entries(s.stages).map(([k, v]) => [k, r3(v.ns / v.count / 1000)]));
  return { overheadP50Us: s.latency_us.overhead.p50, totalP50Us: s.latency_us.total.p50, stagesMeanUs };
}

/** Top self-time functions of a .cpuprofile, as shares of all samples. */
function profileSummary(file: string, top = 20): { fn: string; share: number }[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { id: number; hitCount?: number; callFrame: { functionName: string; url: string; lineNumber: number } }[] };
  const hits = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const n = node.hitCount ?? 0;
    total += n;
    const where = node.callFrame.url.replace(/^.*\/(node_modules\/|src\/)/, '$1');
    const key = `${node.callFrame.functionName || '(anonymous)'} ${where}:${node.callFrame.lineNumber + 1}`;
    hits.set(key, (hits.get(key) ?? 0) + n);
  }
  return [...hits].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, n]) => ({ fn, share: r3(n / total) }));
}

const fraudBody = readFileSync(join(root, 'examples/fraud-detector/sample-request.json'), 'utf8').trim();
const fashionBody = readFileSync(join(root, 'examples/fashion-mnist/sample-request.json'), 'utf8').trim();
const fraudPath = '/models/fraud_detector/predict';
const fashionPath = '/models/fashion_mnist/predict';

// Caching is off everywhere: the load generators repeat one body, which a cache would answer without the model.
const fraudBatched = modelFolder('fraud-batched', 'fraud-detector', 'fraud_detector', { cache: 'false' });
// The overhead phase keeps batching on but without a deliberate wait: at one connection no batch can grow.
const fraudNoDelay = modelFolder('fraud-no-delay', 'fraud-detector', 'fraud_detector', { cache: 'false', batching: '{ max_batch_size: 64, max_queue_delay_us: 0 }' });
const fraudUnbatched = modelFolder('fraud-unbatched', 'fraud-detector', 'fraud_detector', { cache: 'false', batching: 'false' });
const fashionBatched = modelFolder('fashion-batched', 'fashion-mnist', 'fashion_mnist', { cache: 'false' });
const fashionUnbatched = modelFolder('fashion-unbatched', 'fashion-mnist', 'fashion_mnist', { cache: 'false', batching: 'false' });

console.log(`serving benchmark: ${ROUNDS} rounds x ${SECONDS} s, ${CONNECTIONS} connections; servers on core 0, load on core 1`);
const ort = rawOrt(join(fraudBatched, 'fraud_detector/1/model.onnx'), 'features', 10);
console.log('raw ONNX Runtime (core 0):', ort);

const bare = await startServer('bare', ['--import', 'tsx', 'bench/echo-server.ts', '{port}']);
const onServer = await startServer('caliper-batching', caliper(fraudBatched));
const offServer = await startServer('caliper-no-batching', caliper(fraudUnbatched));

const rounds: { bare: LoadResult; batching: LoadResult; noBatching: LoadResult }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  await closedLoop(bare.url, fraudPath, fraudBody, 1);
  const b = await closedLoop(bare.url, fraudPath, fraudBody);
  await closedLoop(onServer.url, fraudPath, fraudBody, 1);
  const on = await closedLoop(onServer.url, fraudPath, fraudBody);
  await closedLoop(offServer.url, fraudPath, fraudBody, 1);
  const off = await closedLoop(offServer.url, fraudPath, fraudBody);
  rounds.push({ bare: b, batching: on, noBatching: off });
  console.log(`round ${round + 1}: bare ${Math.round(b.rps)} rps, caliper batching ${Math.round(on.rps)} (${r3(on.rps / b.rps)}x), no batching ${Math.round(off.rps)} (${r3(off.rps / b.rps)}x)`);
}
const fraudStatsLoaded = await stats(onServer.url, 'fraud_detector');
const ratioBatching = median(rounds.map((r) => r.batching.rps / r.bare.rps));
const ratioNoBatching = median(rounds.map((r) => r.noBatching.rps / r.bare.rps));
const peak = median(rounds.map((r) => r.batching.rps));

// Open loop at half the peak, on a fresh server so its statistics describe only this phase.
await stop(onServer);
const openServer = await startServer('caliper-open-loop', caliper(fraudBatched));
await openLoop({ url: openServer.url + fraudPath, body: fraudBody, rate: Math.round(peak / 2), durationS: 1 });
const open = await openLoop({ url: openServer.url + fraudPath, body: fraudBody, rate: Math.round(peak / 2), durationS: SECONDS * 2 });
const openStats = await stats(openServer.url, 'fraud_detector');
console.log(`open loop at ${Math.round(peak / 2)} rps (half of peak ${Math.round(peak)}):`, open.latencyMs, `achieved ${open.achievedRps} rps, errors ${open.errors}`);
await stop(openServer);

// Server overhead at low load: one connection, so no request waits behind another.
const quietServer = await startServer('caliper-overhead', caliper(fraudNoDelay));
await closedLoop(quietServer.url, fraudPath, fraudBody, SECONDS, 1);
const quietStats = await stats(quietServer.url, 'fraud_detector');
console.log('server overhead (1 connection), median total − inference:', quietStats.overheadP50Us, 'µs; stage means (µs):', quietStats.stagesMeanUs);
await stop(quietServer);
await Promise.all([stop(bare), stop(offServer)]);

// Fashion-MNIST: batching on vs off.
const fashionOn = await startServer('fashion-batching', caliper(fashionBatched));
const fashionOff = await startServer('fashion-no-batching', caliper(fashionUnbatched));
const fashionRounds: { batching: LoadResult; noBatching: LoadResult }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  await closedLoop(fashionOn.url, fashionPath, fashionBody, 1);
  const on = await closedLoop(fashionOn.url, fashionPath, fashionBody);
  await closedLoop(fashionOff.url, fashionPath, fashionBody, 1);
  const off = await closedLoop(fashionOff.url, fashionPath, fashionBody);
  fashionRounds.push({ batching: on, noBatching: off });
  console.log(`fashion round ${round + 1}: batching ${Math.round(on.rps)} rps p99 ${on.p99Ms} ms, no batching ${Math.round(off.rps)} rps p99 ${off.p99Ms} ms (${r3(on.rps / off.rps)}x)`);
}
const fashionStats = await stats(fashionOn.url, 'fashion_mnist');
await Promise.all([stop(fashionOn), stop(fashionOff)]);
const fashionRatio = median(fashionRounds.map((r) => r.batching.rps / r.noBatching.rps));

let profile: { fn: string; share: number }[] | undefined;
if (PROFILE) {
  const dir = join(root, 'bench/data/profiles');
  rmSync(dir, { recursive: true, force: true });
  const profiled = await startServer('caliper-profiled', caliper(fraudBatched, ['--cpu-prof', '--cpu-prof-dir', dir]));
  await closedLoop(profiled.url, fraudPath, fraudBody, SECONDS);
  await stop(profiled);
  const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
  if (file) profile = profileSummary(join(dir, file));
  console.log('top self time under load:', profile);
}

const targets = {
  throughput_vs_bare_fastify: { target: '>= 0.90', value: r3(ratioBatching), met: ratioBatching >= 0.9 },
  fashion_batching_speedup: {
    target: '>= 3 at equal or lower p99', value: r3(fashionRatio),
    p99_ms_batching: median(fashionRounds.map((r) => r.batching.p99Ms)), p99_ms_no_batching: median(fashionRounds.map((r) => r.noBatching.p99Ms)),
    met: fashionRatio >= 3 && median(fashionRounds.map((r) => r.batching.p99Ms)) <= median(fashionRounds.map((r) => r.noBatching.p99Ms)),
  },
  open_loop_p99_at_half_peak: { target: '<= 2 ms', value: open.latencyMs.p99, met: open.latencyMs.p99 <= 2 },
  server_overhead_median_us: { target: '<= 50', value: quietStats.overheadP50Us, met: quietStats.overheadP50Us !== null && quietStats.overheadP50Us <= 50 },
};
const result = {
  machine: '2 vCPU shared, no GPU; servers taskset -c 0, load generator taskset -c 1',
  command: `node --import tsx bench/serving.ts --seconds ${SECONDS} --rounds ${ROUNDS}${PROFILE ? ' --profile' : ''}`,
  date: new Date().toISOString(),
  connections: CONNECTIONS,
  raw_onnxruntime_rows_per_s: ort,
  raw_ort_batch1_vs_bare_fastify: r3(ort.batch1_rows_per_s! / median(rounds.map((r) => r.bare.rps))),
  fraud_rounds: rounds,
  fraud_ratio_batching_vs_bare: r3(ratioBatching),
  fraud_ratio_no_batching_vs_bare: r3(ratioNoBatching),
  fraud_stats_under_load: fraudStatsLoaded,
  open_loop: open,
  open_loop_stats: openStats,
  overhead_quiet_stats: quietStats,
  fashion_rounds: fashionRounds,
  fashion_stats_under_load: fashionStats,
  profile,
  targets,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/serving.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(targets, null, 2));
