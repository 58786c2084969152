/*
 * `caliper serve --workers N` on this machine (issue 22 targets), as ratios measured in the same run.
 *
 *   node --import tsx bench/workers.ts [--seconds 8] [--warmup 3] [--rounds 3] [--connections 16] [--rate 250] [--workers 1,2]
 *
 * For each round, in turn for each worker count (1 = one process, no primary): start `caliper serve` on the fraud
 * model (response cache off, 512 distinct transactions, so every request runs the model), run a closed loop of
 * keep-alive connections from this process (node:http, one connection per Agent) for `--warmup` seconds (3) and
 * `--seconds` measured, and record: requests/s, p50/p99, the server's CPU time per request (primary and workers,
 * all threads, from /proc), each worker's CPU, each worker's share of the requests (x-caliper-worker) and the
 * load generator's own CPU; then, at one fixed request rate (--rate, autocannon) for every worker count, the server's
 * CPU per request and the mean batch size again. The load generator is not pinned: on a 2-core machine it shares the cores with the
 * workers, as the issue asks. Results: bench/results/workers.json.
 */
import autocannon from 'autocannon';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/system/free-port.ts';
import { usableCores } from '../src/system/usable-cores.ts';
import { numberOption } from './bench-options.ts';
import { cpuSeconds } from './process-cpu.ts';

const root = join(import.meta.dirname, '..');
const SECONDS = numberOption('--seconds', 8);
const WARMUP_SECONDS = numberOption('--warmup', 3);
const ROUNDS = numberOption('--rounds', 3);
const CONNECTIONS = numberOption('--connections', 16);
const RATE = numberOption('--rate', 250);
const workersArg = process.argv.indexOf('--workers');
const WORKER_COUNTS = (workersArg >= 0 ? process.argv[workersArg + 1]! : '1,2').split(',').map(Number);
const dataDir = join(root, 'bench/data/workers');

const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];
const BODIES = Array.from({ length: 512 }, (_, i) =>
  JSON.stringify({
    transaction_amount: 5 + ((i * 37) % 2000),
    merchant_category: CATEGORIES[i % CATEGORIES.length],
    time_since_last_txn: 10 + ((i * 101) % 86_400),
  }),
);

function modelRepository(): string {
  rmSync(dataDir, { recursive: true, force: true });
  const dir = join(dataDir, 'fraud_detector');
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'examples/fraud-detector/1'), join(dir, '1'), { recursive: true });
  const yaml = readFileSync(join(root, 'examples/fraud-detector/model.yaml'), 'utf8').replace(/^cache:.*$/m, '');
  writeFileSync(join(dir, 'model.yaml'), yaml);
  return dataDir;
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 1800; i++) {
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

/** Every process of the server: the one process, or the primary and its workers. */
function serverPids(pid: number): number[] {
  try {
    const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
    return [pid, ...children];
  } catch {
    return [pid];
  }
}

function slotOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .find((e) => e.startsWith('CALIPER_WORKER_SLOT='))
      ?.split('=')[1];
  } catch {
    return undefined;
  }
}

interface Window {
  requests: number;
  errors: number;
  latencies: number[];
  byWorker: Map<string, number>;
}

/** A closed loop: `connections` keep-alive connections, each sending its next request when the last is answered. */
function closedLoop(
  url: string,
  connections: number,
): { take(): Window; stop(): Promise<void>; connectionsByWorker: Map<string, number> } {
  let window: Window = { requests: 0, errors: 0, latencies: [], byWorker: new Map() };
  let running = true;
  const connectionsByWorker = new Map<string, number>();
  const agents = Array.from({ length: connections }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  // Connections open one after another (each once the previous one has had its first answer), as clients arriving
  // over time do: the primary hands each to the next free worker. Which worker holds each connection is recorded.
  let opened = Promise.resolve();
  const loops = agents.map(async (agent, c) => {
    let i = c * 31;
    let first: (() => void) | undefined;
    const previous = opened;
    opened = new Promise((resolve) => {
      first = resolve;
    });
    await previous;
    while (running) {
      const body = BODIES[i++ % BODIES.length]!;
      const start = performance.now();
      const worker = await new Promise<string | undefined | null>((resolve) => {
        const req = request(
          `${url}/models/fraud_detector/predict`,
          {
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              resolve(res.statusCode === 200 ? ((res.headers['x-caliper-worker'] as string | undefined) ?? '-') : null),
            );
          },
        );
        req.on('error', () => resolve(null));
        req.end(body);
      });
      if (first) {
        if (worker) connectionsByWorker.set(worker, (connectionsByWorker.get(worker) ?? 0) + 1);
        first();
        first = undefined;
      }
      if (worker === null) {
        window.errors++;
        continue;
      }
      window.requests++;
      window.latencies.push(performance.now() - start);
      window.byWorker.set(worker ?? '-', (window.byWorker.get(worker ?? '-') ?? 0) + 1);
    }
  });
  return {
    connectionsByWorker,
    take() {
      const taken = window;
      window = { requests: 0, errors: 0, latencies: [], byWorker: new Map() };
      return taken;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const agent of agents) agent.destroy();
    },
  };
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const percentile = (values: number[], q: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};
const median = (values: number[]): number => percentile(values, 0.5);

interface RunResult {
  workers: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  serverCpuUsPerRequest: number;
  serverCpuCores: number;
  /** Per worker slot: share of the requests answered, and CPU cores used over the window. */
  perWorker: Record<string, { share: number; cpuCores: number; connections: number }>;
  primaryCpuCores: number;
  generatorCpuCores: number;
  /** Mean rows per model run over the closed-loop window (from the merged /v2 statistics). */
  meanBatchSize: number;
  /** The same request rate (--rate) for every worker count: server CPU per request and mean batch size. */
  fixedRate: { rate: number; requests: number; serverCpuUsPerRequest: number; meanBatchSize: number };
}

/** inference_count and execution_count so far (summed over workers). */
async function modelRuns(url: string): Promise<{ rows: number; runs: number }> {
  const body = (await (await fetch(`${url}/v2/models/fraud_detector/stats`)).json()) as {
    model_stats: { inference_count: number; execution_count: number }[];
  };
  const s = body.model_stats[0]!;
  return { rows: s.inference_count, runs: s.execution_count };
}

const meanBatch = (before: { rows: number; runs: number }, after: { rows: number; runs: number }): number =>
  r3((after.rows - before.rows) / Math.max(1, after.runs - before.runs));

async function run(repo: string, workers: number): Promise<RunResult> {
  const port = await freePort();
  const args = ['bin/caliper.js', 'serve', repo, '--port', String(port)];
  if (workers > 1) args.push('--workers', String(workers));
  const child = spawn(process.execPath, args, {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(url, child);
    const pids = serverPids(child.pid!);
    const runsBefore = await modelRuns(url);
    const load = closedLoop(url, CONNECTIONS);
    // Each worker warms (JIT, batcher) on its own share of the requests: a longer warm-up than one process needs.
    await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
    load.take();
    const cpuBefore = pids.map(cpuSeconds);
    const generatorBefore = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const window = load.take();
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = pids.map((pid, i) => cpuSeconds(pid) - cpuBefore[i]!);
    const generator = process.cpuUsage(generatorBefore);
    await load.stop();
    const runsAfter = await modelRuns(url);
    // The same rate for every worker count, so that CPU per request compares like with like.
    const rateOptions = {
      url: `${url}/models/fraud_detector/predict`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODIES[7]!,
      connections: CONNECTIONS,
      overallRate: RATE,
    };
    const rateRunsBefore = await modelRuns(url);
    const rateCpuBefore = pids.map(cpuSeconds);
    const rated = await autocannon({ ...rateOptions, duration: SECONDS });
    const rateCpu = pids.reduce((n, pid, i) => n + cpuSeconds(pid) - rateCpuBefore[i]!, 0);
    const rateRunsAfter = await modelRuns(url);
    const perWorker: RunResult['perWorker'] = {};
    pids.forEach((pid, i) => {
      const slot = workers > 1 ? slotOf(pid) : i === 0 ? '-' : undefined;
      if (slot === undefined) return;
      perWorker[slot] = {
        share: r3((window.byWorker.get(slot) ?? 0) / Math.max(1, window.requests)),
        cpuCores: r3(cpu[i]! / elapsed),
        connections: workers > 1 ? (load.connectionsByWorker.get(slot) ?? 0) : CONNECTIONS,
      };
    });
    const total = cpu.reduce((a, b) => a + b, 0);
    return {
      workers,
      rps: Math.round(window.requests / elapsed),
      p50Ms: r3(percentile(window.latencies, 0.5)),
      p99Ms: r3(percentile(window.latencies, 0.99)),
      errors: window.errors,
      serverCpuUsPerRequest: r3((total * 1e6) / Math.max(1, window.requests)),
      serverCpuCores: r3(total / elapsed),
      perWorker,
      primaryCpuCores: workers > 1 ? r3(cpu[0]! / elapsed) : 0,
      generatorCpuCores: r3((generator.user + generator.system) / 1e6 / elapsed),
      meanBatchSize: meanBatch(runsBefore, runsAfter),
      fixedRate: {
        rate: RATE,
        requests: rated.requests.total,
        serverCpuUsPerRequest: r3((rateCpu * 1e6) / Math.max(1, rated.requests.total)),
        meanBatchSize: meanBatch(rateRunsBefore, rateRunsAfter),
      },
    };
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

const repo = modelRepository();
const loadBefore = loadavg();
const rounds: RunResult[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the order so neither count always runs first.
  const order = round % 2 === 0 ? WORKER_COUNTS : [...WORKER_COUNTS].reverse();
  const results: RunResult[] = [];
  for (const workers of order) {
    const result = await run(repo, workers);
    console.error(`round ${round + 1} workers ${workers}: ${JSON.stringify(result)}`);
    results.push(result);
  }
  rounds.push(results.sort((a, b) => a.workers - b.workers));
}
const loadAfter = loadavg();

const summary = Object.fromEntries(
  WORKER_COUNTS.map((w) => {
    const runs = rounds.map((r) => r.find((x) => x.workers === w)!);
    return [
      `workers_${w}`,
      {
        rps: median(runs.map((r) => r.rps)),
        serverCpuUsPerRequest: median(runs.map((r) => r.serverCpuUsPerRequest)),
        serverCpuCores: median(runs.map((r) => r.serverCpuCores)),
        generatorCpuCores: median(runs.map((r) => r.generatorCpuCores)),
        p99Ms: median(runs.map((r) => r.p99Ms)),
        errors: runs.reduce((n, r) => n + r.errors, 0),
        meanBatchSize: median(runs.map((r) => r.meanBatchSize)),
        fixedRateCpuUsPerRequest: median(runs.map((r) => r.fixedRate.serverCpuUsPerRequest)),
        fixedRateMeanBatchSize: median(runs.map((r) => r.fixedRate.meanBatchSize)),
      },
    ];
  }),
);
const base = WORKER_COUNTS[0]!;
const ratios = Object.fromEntries(
  WORKER_COUNTS.slice(1).map((w) => [
    `workers_${w}_vs_${base}`,
    {
      // Per round (same conditions), then the median of the rounds.
      cpuPerRequest: r3(
        median(
          rounds.map(
            (r) =>
              r.find((x) => x.workers === w)!.serverCpuUsPerRequest /
              r.find((x) => x.workers === base)!.serverCpuUsPerRequest,
          ),
        ),
      ),
      cpuPerRequestAtFixedRate: r3(
        median(
          rounds.map(
            (r) =>
              r.find((x) => x.workers === w)!.fixedRate.serverCpuUsPerRequest /
              r.find((x) => x.workers === base)!.fixedRate.serverCpuUsPerRequest,
          ),
        ),
      ),
      throughput: r3(
        median(rounds.map((r) => r.find((x) => x.workers === w)!.rps / r.find((x) => x.workers === base)!.rps)),
      ),
    },
  ]),
);
const shares = Object.fromEntries(
  WORKER_COUNTS.filter((w) => w > 1).map((w) => [
    `workers_${w}`,
    rounds.map((r) =>
      Object.fromEntries(Object.entries(r.find((x) => x.workers === w)!.perWorker).map(([s, v]) => [s, v.share])),
    ),
  ]),
);

const output = {
  benchmark: 'caliper serve --workers N: CPU per request and request shares (fraud_detector, cache off)',
  command: `node --import tsx bench/workers.ts --seconds ${SECONDS} --warmup ${WARMUP_SECONDS} --rounds ${ROUNDS} --connections ${CONNECTIONS} --rate ${RATE} --workers ${WORKER_COUNTS.join(',')}`,
  machine: {
    cores: availableParallelism(),
    usableCores: usableCores(),
    cpu: cpus()[0]?.model ?? 'unknown',
    loadAverageBefore: loadBefore.map(r3),
    loadAverageAfter: loadAfter.map(r3),
    note: 'shared with other work; the load generator (this process) is not pinned and shares the cores with the server',
  },
  connections: CONNECTIONS,
  seconds: SECONDS,
  summary,
  ratios,
  workerShares: shares,
  rounds,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/workers.json'), `${JSON.stringify(output, null, 2)}\n`);
console.log(
  JSON.stringify(
    { summary, ratios, workerShares: shares, load: [loadBefore, loadAfter].map((l) => l.map(r3)) },
    null,
    2,
  ),
);
rmSync(dataDir, { recursive: true, force: true });
