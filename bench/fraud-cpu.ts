/*
 * A quick A/B of server CPU per request on the fraud model (issue 17), for trying a change against a baseline
 * checkout: the bare fastify route, Caliper from this checkout, and optionally Caliper from another checkout (a copy
 * of an earlier commit with node_modules linked), each on core 0, 32 connections from this process on core 1,
 * rounds alternated, medians reported. CPU time per request (from /proc) is steadier than requests/s on a shared
 * machine.
 *
 *   node --import tsx bench/fraud-cpu.ts [--seconds 3] [--rounds 3] [--baseline DIR] [--rate N] [fashion]
 *
 * `--paired` loads this checkout's Caliper and the baseline's at the same time (32 connections each, both on core 0),
 * so both meet the same contention in the same window: on a busy machine the ratio of their CPU per request is the
 * figure to read.
 * `--rate N` sends an open loop at N requests/s instead (CPU per request at a low rate); `fashion` measures the
 * fashion-mnist example with batching on and off instead of the fraud model; `fashion --model FILE.onnx` serves that
 * ONNX file under the example's model.yaml (e.g. the 784-1024-1024-10 MLP of bench/serving-mlp.ts).
 * `--batching YAML` replaces the batching line of this checkout's model.yaml and `--baseline-batching YAML` the
 * baseline's (the baseline is this checkout when no --baseline is given): an A/B of two batching settings.
 * `--node-args "FLAGS"` and `--baseline-node-args "FLAGS"` start this checkout's or the baseline's Caliper with those
 * node options (e.g. `--min-semi-space-size=16`): an A/B of V8 settings, the baseline this checkout when no
 * --baseline is given.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startClosedLoop, startOpenLoop } from '../src/bench/load-generator.ts';
import { HttpLoadTarget } from '../src/bench/load-target.ts';
import { freePort } from '../src/system/free-port.ts';
import { numberOption } from './bench-options.ts';
import { exampleModelFolder, fashionRequests, fraudRequests } from './serving-requests.ts';
import { cpuSeconds, wakeups } from './process-cpu.ts';

const root = join(import.meta.dirname, '..');
const SECONDS = numberOption('--seconds', 3);
const ROUNDS = numberOption('--rounds', 3);
const at = process.argv.indexOf('--baseline');
const stringOption = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const BATCHING = stringOption('--batching');
const BASELINE_BATCHING = stringOption('--baseline-batching');
const NODE_ARGS = stringOption('--node-args')?.split(/\s+/).filter(Boolean) ?? [];
const BASELINE_NODE_ARGS = stringOption('--baseline-node-args')?.split(/\s+/).filter(Boolean) ?? [];
const BASELINE =
  at > 0
    ? process.argv[at + 1]
    : BASELINE_BATCHING || BASELINE_NODE_ARGS.length > 0 || NODE_ARGS.length > 0
      ? join(import.meta.dirname, '..')
      : undefined;
const FASHION = process.argv.includes('fashion');
const RATE = numberOption('--rate', 0);
const PAIRED = process.argv.includes('--paired');
const modelAt = process.argv.indexOf('--model');
const MODEL = modelAt > 0 ? process.argv[modelAt + 1] : undefined;
const dataDir = join(root, 'bench/data/fraud-cpu');

execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });

/** A model folder holding version 1 of an example with model.yaml lines replaced (bench/serving-requests.ts). */
const modelFolder = (variant: string, example: string, name: string, replace: Record<string, string>): string =>
  exampleModelFolder(root, dataDir, variant, example, name, replace);

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
}

async function start(name: string, cwd: string, args: string[]): Promise<Server> {
  const port = await freePort();
  const child = spawn('taskset', ['-c', '0', process.execPath, ...args.map((a) => a.replace('{port}', String(port)))], {
    cwd,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited`);
    try {
      if ((await fetch(`${url}/v2/health/ready`)).ok) return { name, url, child };
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} not ready`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const fraudData = fraudRequests();
const fashionData = fashionRequests(root);
const data = FASHION ? fashionData : fraudData;
const path = FASHION ? '/models/fashion_mnist/predict' : '/models/fraud_detector/predict';
const variant = (suffix: string, batching: string | undefined): string => {
  const replace: Record<string, string> = batching ? { cache: 'false', batching } : { cache: 'false' };
  return FASHION
    ? modelFolder(`fashion${suffix}`, 'fashion-mnist', 'fashion_mnist', replace)
    : modelFolder(`fraud${suffix}`, 'fraud-detector', 'fraud_detector', replace);
};
const repo = variant('', BATCHING);
const baselineRepo = BASELINE_BATCHING ? variant('-baseline', BASELINE_BATCHING) : repo;
const off = FASHION
  ? modelFolder('fashion-off', 'fashion-mnist', 'fashion_mnist', { cache: 'false', batching: 'false' })
  : undefined;
if (MODEL && FASHION)
  for (const r of new Set([repo, baselineRepo, off!])) copyFileSync(MODEL, join(r, 'fashion_mnist/1/model.onnx'));

interface Window {
  rps: number;
  cpuUs: number;
  p99: number;
  /** Wake-ups (voluntary context switches) per request, all threads and the main thread. */
  wakeups: number;
  mainWakeups: number;
}

async function window(server: Server): Promise<Window> {
  const target = new HttpLoadTarget(server.url, path, data, false);
  const load = RATE > 0 ? startOpenLoop(target, RATE, 'constant', 64) : startClosedLoop(target, 32);
  await sleep(1000);
  load.nextWindow();
  const pid = server.child.pid!;
  const before = cpuSeconds(pid);
  const wokeBefore = wakeups(pid);
  await sleep(SECONDS * 1000);
  const w = load.nextWindow().summarize();
  const cpu = cpuSeconds(pid) - before;
  const woke = wakeups(pid);
  await load.stop();
  if (w.errors > 0) throw new Error(`${server.name}: ${w.errors} errors`);
  const perRequest = (n: number): number => Math.round((n * 100) / w.requests) / 100;
  return {
    rps: Math.round(w.throughput),
    cpuUs: Math.round((cpu * 1e7) / w.requests) / 10,
    p99: w.latencyMs.p99,
    wakeups: perRequest(woke.all - wokeBefore.all),
    mainWakeups: perRequest(woke.main - wokeBefore.main),
  };
}

const caliperArgs = (r: string, nodeArgs: string[] = []): string[] => [
  ...nodeArgs,
  'bin/caliper.js',
  'serve',
  r,
  '--port',
  '{port}',
];
const servers: Server[] = [await start('bare', root, ['--import', 'tsx', 'bench/echo-server.ts', '{port}'])];
servers.push(await start('caliper', root, caliperArgs(repo, NODE_ARGS)));
if (BASELINE) servers.push(await start('baseline', BASELINE, caliperArgs(baselineRepo, BASELINE_NODE_ARGS)));
if (off) servers.push(await start('caliper-off', root, caliperArgs(off)));
if (off && BASELINE) servers.push(await start('baseline-off', BASELINE, caliperArgs(off)));
const results = new Map<string, Window[]>();
const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`load average ${load()}`);
if (PAIRED) {
  const [mine, theirs] = [servers.find((s) => s.name === 'caliper')!, servers.find((s) => s.name === 'baseline')!];
  const ratios: number[] = [];
  const wakeRatios: number[] = [];
  const rpsRatios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [a, b] = await Promise.all([window(mine), window(theirs)]);
    ratios.push(a.cpuUs / b.cpuUs);
    wakeRatios.push(a.wakeups / b.wakeups);
    rpsRatios.push(a.rps / b.rps);
    console.log(
      `round ${round + 1}: caliper ${a.rps} rps ${a.cpuUs} µs/request ${a.wakeups} wake-ups/request (main ${a.mainWakeups}) p99 ${a.p99} ms, ` +
        `baseline ${b.rps} rps ${b.cpuUs} µs/request ${b.wakeups} wake-ups/request (main ${b.mainWakeups}) p99 ${b.p99} ms, ` +
        `CPU ratio ${(a.cpuUs / b.cpuUs).toFixed(3)}`,
    );
  }
  const med = (v: number[]): string => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!.toFixed(3);
  console.log(
    `median ratios caliper ÷ baseline: CPU per request ${med(ratios)}, wake-ups per request ${med(wakeRatios)}, ` +
      `requests/s ${med(rpsRatios)}; load average ${load()}`,
  );
  for (const s of servers) s.child.kill('SIGINT');
  process.exit(0);
}
for (let round = 0; round < ROUNDS; round++) {
  for (const s of servers) {
    const r = await window(s);
    results.set(s.name, [...(results.get(s.name) ?? []), r]);
    console.log(
      `round ${round + 1} ${s.name}: ${r.rps} rps, ${r.cpuUs} µs CPU/request, ${r.wakeups} wake-ups/request, p99 ${r.p99} ms`,
    );
  }
}
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
for (const [name, rs] of results)
  console.log(`${name}: median ${median(rs.map((r) => r.rps))} rps, ${median(rs.map((r) => r.cpuUs))} µs CPU/request`);
console.log(`load average ${load()}`);
for (const s of servers) s.child.kill('SIGINT');
