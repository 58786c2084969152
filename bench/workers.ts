/*
 * `caliper serve --workers N` on this machine (issue 22 targets), as ratios measured in the same run.
 *
 *   node --import tsx bench/workers.ts [--seconds 4] [--warmup 1] [--idle 4] [--jit-warmup 5] [--jit-requests 20000]
 *     [--settle 30] [--rounds 2] [--windows 4] [--instances 1] [--sequential]
 *     [--connections 16] [--rates 250,1000,4000] [--workers 1,2] [--servers caliper,bare] [--layout split|shared]
 *     [--no-closed] [--max-queue-delay-us N] [--cpu-prof DIR] [--out FILE]
 *     [--connections-per-worker N] [--preferred-batch-sizes a,b|none] [--max-batch-size N]
 *     [--syscalls] [--servers caliper,before --before-root DIR] [--servers caliper,unbatched]
 *     [--servers caliper,flags --flags 'NODE OPTIONS'] [--touch-kb N]
 *
 * The reading (since session 9): every server of a round is up at once and their windows are taken in turn, the order
 * reversed each cycle; the 2-÷-1 ratio is read per window pair (windows seconds apart) for Caliper and for the floor,
 * with its median, quartiles and the median's 95 % interval over every round's pairs (`perWindow`), Caliper's excess
 * over the floor per pair (ratio ÷ ratio, and µs per request), and per server its first half of windows ÷ its second
 * half and instance ÷ instance (`stability`); one line per load on stderr at the end.
 *
 * The load generator (this process, every thread) is pinned to the last core. `--layout split` (default) pins the
 * server (primary and workers) to the other cores, so one worker and two workers get the same cores and the generator
 * never takes their CPU; `shared` lets the server use every core, the generator's included.
 *
 * For each round, in turn for each worker count (1 = one process, no primary; the order alternates by round):
 * start `caliper serve` on the fraud model (response cache off, 512 distinct transactions, so every request runs the
 * model); warm it with a closed loop (`--jit-warmup` s, not measured) and let it settle until it is `--settle` s old
 * (V8's memory reducer collects start-up's garbage in full GCs at about 16, 17 and 26 s after start: in the primary,
 * ≈ 150 ms of CPU that fell in the first window); measure it idle (`--idle` s: CPU per process and wake-ups; measured
 * before the warm-up until session 8, where the primary's start-up collections read as 10-15 ms/s); then at
 * each offered rate (`--rates`, open loop:
 * Poisson arrivals sent over `--connections` keep-alive connections opened one after another, so the primary hands
 * half to each worker) and in a closed loop (the same connections, each sending its next request once answered): the
 * server's CPU per request (from /proc, every thread; the primary and each worker apart; tsx's esbuild service, which
 * exists only in a source checkout, left out; the main threads apart from the others: V8's GC helpers, ORT's
 * pool), minor page faults, the generator's own CPU, mean rows per model run, each worker's share.
 * The floor (`--servers bare`): the same measures of bench/echo-server.ts, a bare fastify route answering the same
 * JSON without a model, as one process and as node:cluster workers: what two processes sharing the server's core
 * cost per request with none of Caliper's work, so Caliper's 2-÷-1 ratio reads next to the floor's.
 * Medians over rounds; ratios per round, then their median. Results: bench/results/workers.json.
 *
 * For quicker, steadier comparisons on a busy machine: `--rates none` (closed loop only), `--windows K` (K windows per
 * load, the median of each figure kept), `--interleave` (every server of a round up at once, their windows taken in
 * turn, so the machine's drifting load falls on each alike). Attribution: `--connections-per-worker N` (each worker's
 * batcher sees as many requests as one process's), `--preferred-batch-sizes`, `--max-batch-size 1` (batching off),
 * `--syscalls` (system calls per request by call, from `perf stat`; needs root), `--servers caliper,unbatched` (the
 * same server with max_batch_size 1 in the same run: its summary and ratios under `unbatched`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, openSync, readdirSync, writeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/system/free-port.ts';
import { numberOption } from './bench-options.ts';

const root = join(import.meta.dirname, '..');
const SECONDS = numberOption('--seconds', 4);
const WARMUP_SECONDS = numberOption('--warmup', 1);
const IDLE_SECONDS = numberOption('--idle', 4);
const JIT_WARMUP_SECONDS = numberOption('--jit-warmup', 5);
const SETTLE_SECONDS = numberOption('--settle', 30);
const ROUNDS = numberOption('--rounds', 2);
/** Servers started per worker count and server kind in each round (each a separate instance, measured in turn). */
const INSTANCES = numberOption('--instances', 1);
/**
 * JIT warm-up: a closed loop for at least --jit-warmup s and until every worker has answered this many requests (a
 * worker sees 1/N of them: on a loaded machine 5 s left two workers' code still being optimized in the measured windows).
 */
const JIT_REQUESTS_PER_WORKER = numberOption('--jit-requests', 20_000);
const CONNECTIONS = numberOption('--connections', 16);
/** Connections per worker instead of a fixed count (each worker's batcher then sees as many as one process's). */
const CONNECTIONS_PER_WORKER = numberOption('--connections-per-worker', 0);
/** Windows per load and server (their per-field median is kept); with --interleave, taken in turn across servers. */
const WINDOWS = numberOption('--windows', 4);
/**
 * Every server of a round up at once and their windows taken in turn (the default since session 9): the ratio is read
 * per window from windows seconds apart. `--sequential`: one server after another (sessions 6-8's default), where a
 * drift of the machine over minutes falls on one worker count only.
 */
const INTERLEAVE = !process.argv.includes('--sequential');
const listOption = (name: string, fallback: string): number[] => {
  const i = process.argv.indexOf(name);
  const text = i >= 0 ? process.argv[i + 1]! : fallback;
  return text === 'none' ? [] : text.split(',').map(Number);
};
const RATES = listOption('--rates', '250,1000,4000');
const WORKER_COUNTS = listOption('--workers', '1,2');
const serversArg = process.argv.indexOf('--servers');
type ServerKind = 'caliper' | 'bare' | 'before' | 'unbatched' | 'flags' | 'touched';
const SERVERS = (serversArg >= 0 ? process.argv[serversArg + 1]! : 'caliper,bare').split(',') as ServerKind[];
for (const kind of SERVERS)
  if (!['caliper', 'bare', 'before', 'unbatched', 'flags', 'touched'].includes(kind))
    throw new Error(`--servers: caliper,bare,before,unbatched,flags,touched, got ${kind}`);
const flagsArg = process.argv.indexOf('--flags');
/**
 * `--servers caliper,flags --flags '--max-semi-space-size=2'`: `flags` is Caliper with these Node.js and V8 options (on
 * node's command line, so cluster workers inherit them), measured in the same run: a V8 setting's effect on each worker count.
 */
const NODE_FLAGS = flagsArg >= 0 ? process.argv[flagsArg + 1]! : undefined;
if (SERVERS.includes('flags') && NODE_FLAGS === undefined) throw new Error('--servers flags needs --flags "..."');
/**
 * `--servers bare,touched --touch-kb N`: `touched` is the floor reading N KB of its own memory per request
 * (bench/echo-server.ts --touch-kb): a working set of a known size, to see what two processes taking turns on one
 * core pay for one, beside the bare floor in the same run.
 */
const TOUCH_KB = numberOption('--touch-kb', 0);
const stdoutArg = process.argv.indexOf('--server-stdout');
/** A folder for each server's standard output (e.g. with `--flags --trace-gc`): KIND-WORKERS-INSTANCE.log. */
const SERVER_STDOUT_DIR = stdoutArg >= 0 ? process.argv[stdoutArg + 1]! : undefined;
/**
 * Every server runs with V8's --trace-gc (one line per collection on its standard output, read here): per window,
 * scavenges per 1,000 requests, full (mark-compact) collections, the collections' reported time per request and the
 * young generation's size as a scavenge finds it (MB freed per scavenge). `--no-trace-gc` leaves it off.
 */
const TRACE_GC = !process.argv.includes('--no-trace-gc');

/** Collections seen so far in a server's processes (every isolate: tsx's loader thread has one, quiet after start). */
interface GcCounts {
  scavenges: number;
  fullGcs: number;
  /** Sum of the pauses V8 reports (ms): wall time on the main thread, so on a loaded core it includes waiting. */
  pauseMs: number;
  /** MB freed by each scavenge (the young generation's occupancy when it ran: its size, in effect), in order. */
  scavengeFreedMb: number[];
}
const GC_LINE =
  /^\[\d+:0x[0-9a-f]+\]\s+[\d.]+ ms: (Scavenge|Minor Mark-Sweep|Mark-Compact|Mark-Sweep)[^,]*?([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, ([\d.]+) \/ [\d.]+ ms/;
/** Reads --trace-gc lines into `counts`. */
function countGcLines(counts: GcCounts, text: string): void {
  for (const line of text.split('\n')) {
    const m = GC_LINE.exec(line);
    if (!m) continue;
    counts.pauseMs += Number(m[4]);
    if (m[1] === 'Scavenge' || m[1] === 'Minor Mark-Sweep') {
      counts.scavenges++;
      counts.scavengeFreedMb.push(Number(m[2]) - Number(m[3]));
    } else counts.fullGcs++;
  }
}
const beforeArg = process.argv.indexOf('--before-root');
/**
 * `--servers caliper,before --before-root DIR`: `before` is Caliper from another source checkout (e.g. `git archive
 * COMMIT | tar -x -C DIR` with DIR/node_modules linked to this one's), measured in the same run: a change's effect on
 * each worker count, as caliper ÷ before per round.
 */
const BEFORE_ROOT = beforeArg >= 0 ? process.argv[beforeArg + 1]! : undefined;
if (SERVERS.includes('before') && BEFORE_ROOT === undefined)
  throw new Error('--servers before needs --before-root DIR');
const layoutArg = process.argv.indexOf('--layout');
const LAYOUT = layoutArg >= 0 ? process.argv[layoutArg + 1]! : 'split';
if (LAYOUT !== 'split' && LAYOUT !== 'shared') throw new Error(`--layout: split or shared, got ${LAYOUT}`);
const dataDir = join(root, 'bench/data/workers');
const delayArg = process.argv.indexOf('--max-queue-delay-us');
/** Overrides the model's batching.max_queue_delay_us (0: a batch leaves with what has arrived, no wait). */
const MAX_QUEUE_DELAY_US = delayArg >= 0 ? Number(process.argv[delayArg + 1]) : undefined;
const preferredArg = process.argv.indexOf('--preferred-batch-sizes');
/** Overrides batching.preferred_batch_sizes (`none`: no preferred size, a batch waits for the delay or the maximum). */
const PREFERRED_BATCH_SIZES = preferredArg >= 0 ? listOption('--preferred-batch-sizes', '') : undefined;
const maxBatchArg = process.argv.indexOf('--max-batch-size');
/** Overrides batching.max_batch_size (1: every request runs alone). */
const MAX_BATCH_SIZE = maxBatchArg >= 0 ? Number(process.argv[maxBatchArg + 1]) : undefined;
const CLOSED_LOOP = !process.argv.includes('--no-closed');
const profArg = process.argv.indexOf('--cpu-prof');
/** A folder for V8 CPU profiles of every server process (one file per process, written when it exits). */
const CPU_PROF_DIR = profArg >= 0 ? process.argv[profArg + 1] : undefined;

const SYSCALLS = process.argv.includes('--syscalls');
/**
 * The calls counted: every one (raw_syscalls) and those of serving a request. Every syscalls:sys_enter_* tracepoint
 * at once (≈ 330 events per thread) slowed the server to a few percent of its rate.
 */
const SYSCALL_EVENTS = [
  'raw_syscalls:sys_enter',
  ...['read', 'writev', 'write', 'epoll_pwait', 'futex'].map((call) => `syscalls:sys_enter_${call}`),
];

/**
 * System calls made by `processes` (every thread) over the next `seconds`, by call: `perf stat` counting the kernel's
 * syscall tracepoints (needs root or perf_event_paranoid ≤ -1 and tracefs; counting, no tracing).
 */
function countSyscalls(processes: ServerProcess[], seconds: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const perf = spawn(
      'perf',
      [
        'stat',
        '-x,',
        '-e',
        SYSCALL_EVENTS.join(','),
        '-p',
        processes.map((p) => p.pid).join(','),
        '--',
        'sleep',
        String(seconds),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let text = '';
    perf.stderr.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    perf.on('error', reject);
    perf.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`perf stat exited with ${code}: ${text.slice(0, 300)}`));
      const counts = new Map<string, number>();
      for (const line of text.split('\n')) {
        const [count, , event] = line.split(',');
        const n = Number(count);
        if (event === 'raw_syscalls:sys_enter') counts.set('all', n);
        else if (event?.startsWith('syscalls:sys_enter_') && n > 0)
          counts.set(event.slice('syscalls:sys_enter_'.length), n);
      }
      resolve(counts);
    });
  });
}

const RUN_STARTED = performance.now();
const CORES = availableParallelism();
const GENERATOR_CORE = CORES - 1;
const SERVER_CORES = LAYOUT === 'split' && CORES > 1 ? `0-${CORES - 2}` : `0-${CORES - 1}`;
// Every thread of this process (libuv's pool, V8's) on the generator's core.
execFileSync('taskset', ['-a', '-p', '-c', String(GENERATOR_CORE), String(process.pid)], { stdio: 'ignore' });

const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];
const BODIES = Array.from({ length: 512 }, (_, i) =>
  JSON.stringify({
    transaction_amount: 5 + ((i * 37) % 2000),
    merchant_category: CATEGORIES[i % CATEGORIES.length],
    time_since_last_txn: 10 + ((i * 101) % 86_400),
  }),
);

/** The model repository served (`maxBatchSize`: overrides batching.max_batch_size, as --max-batch-size does). */
function modelRepository(repoDir: string, maxBatchSize = MAX_BATCH_SIZE): string {
  const dir = join(repoDir, 'fraud_detector');
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'examples/fraud-detector/1'), join(dir, '1'), { recursive: true });
  let yaml = readFileSync(join(root, 'examples/fraud-detector/model.yaml'), 'utf8').replace(/^cache:.*$/m, '');
  if (MAX_QUEUE_DELAY_US !== undefined)
    yaml = yaml.replace(/max_queue_delay_us: \d+/, `max_queue_delay_us: ${MAX_QUEUE_DELAY_US}`);
  if (PREFERRED_BATCH_SIZES !== undefined)
    yaml = yaml.replace(
      /preferred_batch_sizes: \[[^\]]*\]/,
      `preferred_batch_sizes: [${PREFERRED_BATCH_SIZES.join(', ')}]`,
    );
  if (maxBatchSize !== undefined)
    yaml = yaml
      .replace(/max_batch_size: \d+/, `max_batch_size: ${maxBatchSize}`)
      // Preferred sizes above the new maximum are dropped (the config rejects them).
      .replace(
        /preferred_batch_sizes: \[([^\]]*)\]/,
        (_, sizes: string) =>
          `preferred_batch_sizes: [${sizes
            .split(',')
            .map(Number)
            .filter((n) => n <= maxBatchSize)
            .join(', ')}]`,
      );
  writeFileSync(join(dir, 'model.yaml'), yaml);
  return repoDir;
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

const readProc = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** A process of the server: the primary (or the one process), a worker (by slot), or tsx's esbuild service. */
interface ServerProcess {
  pid: number;
  role: 'primary' | 'worker' | 'esbuild';
  slot?: string;
}

/** Every process under `pid` (it included), with its role. */
function serverProcesses(pid: number, workers: number): ServerProcess[] {
  const out: ServerProcess[] = [];
  const visit = (p: number, depth: number): void => {
    const comm = readProc(`/proc/${p}/comm`)?.trim();
    if (comm === undefined) return;
    if (comm === 'esbuild') out.push({ pid: p, role: 'esbuild' });
    else if (depth === 0)
      out.push({ pid: p, role: workers > 1 ? 'primary' : 'worker', ...(workers > 1 ? {} : { slot: '-' }) });
    else {
      const slot = readProc(`/proc/${p}/environ`)
        ?.split('\0')
        .find((e) => e.startsWith('CALIPER_WORKER_SLOT='))
        ?.split('=')[1];
      out.push({ pid: p, role: slot !== undefined ? 'worker' : 'esbuild', ...(slot !== undefined ? { slot } : {}) });
    }
    let children: number[] = [];
    try {
      children = execFileSync('pgrep', ['-P', String(p)], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      // no children
    }
    for (const c of children) visit(c, depth + 1);
  };
  visit(pid, 0);
  return out;
}

/** CPU seconds (all threads; the main thread apart), wake-ups (voluntary context switches, all threads) and minor page faults of a process so far. */
interface ProcessSample {
  cpu: number;
  /** The kernel's part of cpu (system time: syscalls, the network stack). */
  systemCpu: number;
  /** Involuntary context switches, all threads: the process preempted while it had work (time slices on a shared core). */
  preemptions: number;
  mainCpu: number;
  wakeups: number;
  mainWakeups: number;
  minorFaults: number;
}

const statFields = (path: string): string[] | undefined =>
  readProc(path)
    ?.replace(/^.*\) /, '')
    .split(' ');

function sampleProcess(pid: number): ProcessSample {
  const fields = statFields(`/proc/${pid}/stat`);
  if (fields === undefined)
    return { cpu: 0, systemCpu: 0, preemptions: 0, mainCpu: 0, wakeups: 0, mainWakeups: 0, minorFaults: 0 };
  const main = statFields(`/proc/${pid}/task/${pid}/stat`);
  let wakeups = 0;
  let mainWakeups = 0;
  let preemptions = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const status = readProc(`/proc/${pid}/task/${tid}/status`);
      const m = status && /^voluntary_ctxt_switches:\s+(\d+)/m.exec(status);
      if (m) wakeups += Number(m[1]);
      if (m && tid === String(pid)) mainWakeups = Number(m[1]);
      const p = status && /^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status);
      if (p) preemptions += Number(p[1]);
    }
  } catch {
    // exited
  }
  return {
    cpu: (Number(fields[11]) + Number(fields[12])) / 100,
    systemCpu: Number(fields[12]) / 100,
    preemptions,
    mainCpu: main ? (Number(main[11]) + Number(main[12])) / 100 : 0,
    wakeups,
    mainWakeups,
    minorFaults: Number(fields[7]),
  };
}

/** Busy seconds of each core so far (/proc/stat: everything but idle and iowait; USER_HZ ticks). */
function coreBusySeconds(): number[] {
  const out: number[] = [];
  for (const line of (readProc('/proc/stat') ?? '').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const [user, nice, system, , , irq, softirq, steal] = m[2]!.trim().split(/\s+/).map(Number);
    out[Number(m[1])] = (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / 100;
  }
  return out;
}
const SERVER_CORE_LIST = (): number[] => {
  const [first, last] = SERVER_CORES.split('-').map(Number);
  return Array.from({ length: last! - first! + 1 }, (_, i) => first! + i);
};

/** CPU and wake-ups of every server process over a window: start() then stop(). */
function meter(processes: ServerProcess[]): { stop(): Map<number, ProcessSample> } {
  const before = new Map(processes.map((p) => [p.pid, sampleProcess(p.pid)]));
  return {
    stop() {
      return new Map(
        processes.map((p) => {
          const a = before.get(p.pid)!;
          const b = sampleProcess(p.pid);
          return [
            p.pid,
            {
              cpu: b.cpu - a.cpu,
              systemCpu: b.systemCpu - a.systemCpu,
              preemptions: b.preemptions - a.preemptions,
              mainCpu: b.mainCpu - a.mainCpu,
              wakeups: b.wakeups - a.wakeups,
              mainWakeups: b.mainWakeups - a.mainWakeups,
              minorFaults: b.minorFaults - a.minorFaults,
            },
          ];
        }),
      );
    },
  };
}

interface Window {
  requests: number;
  errors: number;
  latencies: number[];
  byWorker: Map<string, number>;
}
const emptyWindow = (): Window => ({ requests: 0, errors: 0, latencies: [], byWorker: new Map() });

/**
 * `connections` keep-alive connections, opened one after another (each once the previous one has had its first
 * answer), as clients arriving over time do: the primary hands each to the next free worker. Then either a closed
 * loop (each connection sends its next request once answered) or an open loop at a rate (Poisson arrivals, each
 * sent on the next idle connection; when none is idle it waits, and its latency counts from its due time).
 */
async function openConnections(url: string, connections: number) {
  let window = emptyWindow();
  const connectionsByWorker = new Map<string, number>();
  let next = 0;
  const send = (agent: Agent, due: number, done: () => void): void => {
    const body = BODIES[next++ % BODIES.length]!;
    const req = request(
      `${url}/models/fraud_detector/predict`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            window.requests++;
            window.latencies.push(performance.now() - due);
            const worker = (res.headers['x-caliper-worker'] as string | undefined) ?? '-';
            window.byWorker.set(worker, (window.byWorker.get(worker) ?? 0) + 1);
          } else window.errors++;
          done();
        });
      },
    );
    req.on('error', () => {
      window.errors++;
      done();
    });
    req.end(body);
  };
  const agents: Agent[] = [];
  for (let c = 0; c < connections; c++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const worker = await new Promise<string>((resolve) => {
      const req = request(
        `${url}/models/fraud_detector/predict`,
        { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve((res.headers['x-caliper-worker'] as string | undefined) ?? '-'));
        },
      );
      req.on('error', () => resolve('error'));
      req.end(BODIES[c]!);
    });
    connectionsByWorker.set(worker, (connectionsByWorker.get(worker) ?? 0) + 1);
  }
  return {
    connectionsByWorker,
    /** Requests answered in the window so far. */
    answered(): number {
      return window.requests;
    },
    take(): Window {
      const taken = window;
      window = emptyWindow();
      return taken;
    },
    /** Runs a closed loop until the returned stop() resolves. */
    closedLoop(): () => Promise<void> {
      let running = true;
      const loops = agents.map(
        (agent) =>
          new Promise<void>((resolve) => {
            const loop = (): void => {
              if (running) send(agent, performance.now(), loop);
              else resolve();
            };
            loop();
          }),
      );
      return async () => {
        running = false;
        await Promise.all(loops);
      };
    },
    /** Runs an open loop at `rate` requests/s until the returned stop() resolves. */
    openLoop(rate: number): () => Promise<void> {
      let running = true;
      const idle = [...agents];
      const backlog: number[] = [];
      let inflight = 0;
      let settle: (() => void) | undefined;
      let state = 0x2545f491;
      const gapMs = (): number => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        return -Math.log(1 - (state >>> 0) / 4294967296) * (1000 / rate);
      };
      const dispatch = (agent: Agent, due: number): void => {
        inflight++;
        send(agent, due, () => {
          inflight--;
          if (running && backlog.length > 0) dispatch(agent, backlog.shift()!);
          else {
            idle.push(agent);
            if (!running && inflight === 0) settle?.();
          }
        });
      };
      let dueAt = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const tick = (): void => {
        if (!running) return;
        const now = performance.now();
        while (dueAt <= now) {
          const agent = idle.shift();
          if (agent) dispatch(agent, dueAt);
          else backlog.push(dueAt);
          dueAt += gapMs();
        }
        // Millisecond timer ticks: requests due within the same millisecond leave together; no busy polling.
        timer = setTimeout(tick, Math.max(0, Math.floor(dueAt - performance.now())));
      };
      tick();
      return async () => {
        running = false;
        if (timer) clearTimeout(timer);
        backlog.length = 0;
        if (inflight > 0) await new Promise<void>((resolve) => (settle = resolve));
      };
    },
    close(): void {
      for (const agent of agents) agent.destroy();
    },
  };
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const percentile = (values: number[], q: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};
const median = (values: number[]): number => percentile(values, 0.5);

/** One measured window: what the server and the generator spent on it. */
interface LoadResult {
  /** Offered requests/s (open loop), or "closed". */
  offered: number | 'closed';
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Server CPU per answered request (µs): all server processes, then the primary and the workers apart. */
  serverCpuUsPerRequest: number;
  primaryCpuUsPerRequest: number;
  workersCpuUsPerRequest: number;
  /** The part of the server's CPU per request spent on the processes' main (JavaScript) threads. */
  mainThreadsCpuUsPerRequest: number;
  /** Wake-ups of the processes' main threads per request (the rest: V8's helper threads, ORT's pool). */
  mainThreadWakeupsPerRequest: number;
  /** Minor page faults per request, all server processes. */
  minorFaultsPerRequest: number;
  /** The kernel's part of the server's CPU per request (µs). */
  systemCpuUsPerRequest: number;
  /** Involuntary context switches per request, all server threads (preempted with work left: a shared core's slices). */
  preemptionsPerRequest: number;
  /** The server's idle CPU over the same time, per request (µs): the part of the above that load does not cause. */
  idleShareUsPerRequest: number;
  serverCpuCores: number;
  generatorCpuUsPerRequest: number;
  generatorCpuCores: number;
  serverWakeupsPerRequest: number;
  /** Mean rows per model run (from the merged /v2 statistics). */
  meanBatchSize: number;
  /** Per worker slot: share of the requests answered and CPU cores used. */
  perWorker: Record<string, { share: number; cpuCores: number }>;
  /** Which window of this server at this load (0-based), and when it opened (s since the run started). */
  window: number;
  atS: number;
  /**
   * Cores' worth of CPU used over the window on the server's cores by anything but this server (the other servers of
   * an interleaved round idling, other users' processes), and on the generator's core by anything but the generator:
   * a window where either is large was not measured on the machine the layout promises.
   */
  otherCpuOnServerCores: number;
  otherCpuOnGeneratorCore: number;
  /**
   * With --trace-gc (the default): scavenges per 1,000 requests, full collections in the window, V8's reported GC
   * pauses per request (µs, wall), and the median MB a scavenge freed (the young generation's size in effect: 1-2 MB
   * after V8 shrank it on an idle spell, up to 16 per semi-space once grown).
   */
  scavengesPerKRequests?: number;
  fullGcs?: number;
  gcPauseUsPerRequest?: number;
  youngGenerationMb?: number;
  /** With --syscalls: system calls per request, all server processes, in all and by call (SYSCALL_EVENTS). */
  syscallsPerRequest?: { total: number; byCall: Record<string, number> };
}

interface RunResult {
  server: ServerKind;
  workers: number;
  /** Which of the round's --instances servers of this kind and worker count. */
  instance: number;
  /** When the server was started (s since the run started). */
  startedAtS: number;
  connectionsByWorker: Record<string, number>;
  /** Idle server: CPU (ms per second) and wake-ups per second, all processes, and per role. */
  idle: { cpuMsPerS: number; primaryCpuMsPerS: number; workersCpuMsPerS: number; wakeupsPerS: number };
  /** tsx's esbuild service (source checkout only), idle: left out of every server figure. */
  esbuildCpuMsPerS: number;
  /** Per load, the median of each figure over its windows. */
  loads: LoadResult[];
  /** Per load, every window in the order taken. */
  windows: Record<string, LoadResult[]>;
}

/** inference_count and execution_count so far (summed over workers). */
async function modelRuns(url: string, server: ServerKind): Promise<{ rows: number; runs: number }> {
  if (server === 'bare' || server === 'touched') return { rows: 0, runs: 0 };
  const body = (await (await fetch(`${url}/v2/models/fraud_detector/stats`)).json()) as {
    model_stats: { inference_count: number; execution_count: number }[];
  };
  const s = body.model_stats[0]!;
  return { rows: s.inference_count, runs: s.execution_count };
}

/** A started server, idle cost measured, warmed and settled: measure() runs one window at an offered load. */
interface StartedServer {
  server: ServerKind;
  workers: number;
  measure(offered: number | 'closed'): Promise<LoadResult>;
  /** Closes the connections, stops the server and returns its result (the windows measured so far, by load). */
  stop(): Promise<RunResult>;
}

/** The median of each numeric field over windows measured at the same load (the first window's offered load). */
function medianWindow(windows: LoadResult[]): LoadResult {
  if (windows.length === 1) return windows[0]!;
  const first = windows[0]!;
  const out: Record<string, unknown> = { ...first };
  for (const [key, value] of Object.entries(first))
    if (typeof value === 'number') out[key] = median(windows.map((w) => w[key as keyof LoadResult] as number));
  out.errors = windows.reduce((n, w) => n + w.errors, 0);
  out.windows = windows.length;
  out.serverCpuUsPerRequestByWindow = windows.map((w) => w.serverCpuUsPerRequest);
  return out as unknown as LoadResult;
}

async function startServer(
  repo: string,
  workers: number,
  server: ServerKind,
  instance: number,
): Promise<StartedServer> {
  const port = await freePort();
  const args = [
    '-c',
    SERVER_CORES,
    process.execPath,
    ...(CPU_PROF_DIR !== undefined ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR] : []),
    // Node's own options (cluster workers inherit them from the primary's execArgv; NODE_OPTIONS refuses V8's).
    ...(TRACE_GC ? ['--trace-gc'] : []),
    ...(server === 'flags' ? NODE_FLAGS!.split(' ').filter(Boolean) : []),
    ...(server !== 'bare' && server !== 'touched'
      ? [join(server === 'before' ? BEFORE_ROOT! : root, 'bin/caliper.js'), 'serve', repo, '--port', String(port)]
      : [
          '--import',
          'tsx',
          'bench/echo-server.ts',
          String(port),
          ...(server === 'touched' ? ['--touch-kb', String(TOUCH_KB)] : []),
        ]),
  ];
  if (workers > 1) args.push('--workers', String(workers));
  const startedAt = performance.now();
  if (SERVER_STDOUT_DIR !== undefined) mkdirSync(SERVER_STDOUT_DIR, { recursive: true });
  const stdoutFile =
    SERVER_STDOUT_DIR !== undefined
      ? openSync(join(SERVER_STDOUT_DIR, `${server}-${workers}-${instance}.log`), 'w')
      : undefined;
  const gc: GcCounts = { scavenges: 0, fullGcs: 0, pauseMs: 0, scavengeFreedMb: [] };
  let partial = '';
  const child = spawn('taskset', args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      CALIPER_LOG_LEVEL: 'warn',
    },
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    if (stdoutFile !== undefined) writeSync(stdoutFile, chunk);
    const text = partial + chunk.toString();
    const end = text.lastIndexOf('\n');
    partial = text.slice(end + 1);
    countGcLines(gc, text.slice(0, end + 1));
  });
  const url = `http://127.0.0.1:${port}`;
  const stopChild = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  try {
    await waitReady(url, child);
    await new Promise((r) => setTimeout(r, 1000));
    const processes = serverProcesses(child.pid!, workers);
    const serving = processes.filter((p) => p.role !== 'esbuild');
    const sum = (samples: Map<number, ProcessSample>, which: ServerProcess[], key: keyof ProcessSample): number =>
      which.reduce((n, p) => n + samples.get(p.pid)![key], 0);

    const conns = await openConnections(
      url,
      CONNECTIONS_PER_WORKER > 0 ? CONNECTIONS_PER_WORKER * workers : CONNECTIONS,
    );
    // JIT warm-up before anything is measured: each worker sees only its share of the requests, so it needs as many
    // requests in all as one process does before its code is optimized.
    conns.take();
    const warm = conns.closedLoop();
    const warmStarted = performance.now();
    await new Promise((r) => setTimeout(r, JIT_WARMUP_SECONDS * 1000));
    // Until every worker has had its requests (by count: a loaded machine answers fewer per second), 3 minutes at most.
    while (conns.answered() < JIT_REQUESTS_PER_WORKER * workers && performance.now() - warmStarted < 180_000)
      await new Promise((r) => setTimeout(r, 250));
    await warm();
    conns.take();
    // The background cost every process pays whatever the load, measured once the server has settled (warm, past
    // start-up's collections: before, the primary's start-up GC read as 10-15 ms/s of idle CPU).
    const measureIdle = async () => {
      const idleMeter = meter(processes);
      await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
      const idleSamples = idleMeter.stop();
      const perS = (x: number): number => r1((x * 1000) / IDLE_SECONDS);
      const idle = {
        cpuMsPerS: perS(sum(idleSamples, serving, 'cpu')),
        primaryCpuMsPerS: perS(
          sum(
            idleSamples,
            serving.filter((p) => p.role === 'primary'),
            'cpu',
          ),
        ),
        workersCpuMsPerS: perS(
          sum(
            idleSamples,
            serving.filter((p) => p.role === 'worker'),
            'cpu',
          ),
        ),
        wakeupsPerS: r1(sum(idleSamples, serving, 'wakeups') / IDLE_SECONDS),
      };
      const esbuildCpuMsPerS = perS(
        sum(
          idleSamples,
          processes.filter((p) => p.role === 'esbuild'),
          'cpu',
        ),
      );
      return { idle, idleCpuPerS: sum(idleSamples, serving, 'cpu') / IDLE_SECONDS, esbuildCpuMsPerS };
    };
    let idleFigures: Awaited<ReturnType<typeof measureIdle>> | undefined;

    const windows = new Map<string, LoadResult[]>();
    const measure = async (offered: number | 'closed'): Promise<LoadResult> => {
      // Start-up's last collections (V8's memory reducer, some seconds after the allocations stop) before any window.
      const age = (performance.now() - startedAt) / 1000;
      if (idleFigures === undefined && age < SETTLE_SECONDS)
        await new Promise((r) => setTimeout(r, (SETTLE_SECONDS - age) * 1000));
      idleFigures ??= await measureIdle();
      const { idleCpuPerS } = idleFigures;
      const stop = offered === 'closed' ? conns.closedLoop() : conns.openLoop(offered);
      await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
      conns.take();
      const runsBefore = await modelRuns(url, server);
      conns.take();
      const m = meter(processes);
      const syscalls = SYSCALLS ? countSyscalls(serving, SECONDS) : undefined;
      const generatorBefore = process.cpuUsage();
      const coresBefore = coreBusySeconds();
      const gcBefore = { ...gc, scavengeFreedMb: gc.scavengeFreedMb.length };
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, SECONDS * 1000));
      const window = conns.take();
      const syscallCounts = await syscalls;
      const samples = m.stop();
      const coresAfter = coreBusySeconds();
      const gcWindow = {
        scavenges: gc.scavenges - gcBefore.scavenges,
        fullGcs: gc.fullGcs - gcBefore.fullGcs,
        pauseMs: gc.pauseMs - gcBefore.pauseMs,
        freed: gc.scavengeFreedMb.slice(gcBefore.scavengeFreedMb),
      };
      const elapsed = (performance.now() - t0) / 1000;
      const generator = process.cpuUsage(generatorBefore);
      await stop();
      const runsAfter = await modelRuns(url, server);
      const n = Math.max(1, window.requests);
      const us = (seconds: number): number => r1((seconds * 1e6) / n);
      const perWorker: LoadResult['perWorker'] = {};
      for (const p of serving.filter((x) => x.role === 'worker'))
        perWorker[p.slot!] = {
          share: r3((window.byWorker.get(p.slot!) ?? 0) / n),
          cpuCores: r3(samples.get(p.pid)!.cpu / elapsed),
        };
      const generatorSeconds = (generator.user + generator.system) / 1e6;
      const busy = (core: number): number => (coresAfter[core] ?? 0) - (coresBefore[core] ?? 0);
      const serverCoresBusy = SERVER_CORE_LIST().reduce((n, c) => n + busy(c), 0);
      const serverSeconds = sum(samples, processes, 'cpu');
      const result: LoadResult = {
        offered,
        window: (windows.get(String(offered)) ?? []).length,
        atS: r1((t0 - RUN_STARTED) / 1000),
        otherCpuOnServerCores: r3(
          Math.max(0, serverCoresBusy - serverSeconds - (LAYOUT === 'shared' ? generatorSeconds : 0)) / elapsed,
        ),
        otherCpuOnGeneratorCore: r3(
          LAYOUT === 'split' ? Math.max(0, busy(GENERATOR_CORE) - generatorSeconds) / elapsed : 0,
        ),
        rps: Math.round(window.requests / elapsed),
        p50Ms: r3(percentile(window.latencies, 0.5)),
        p99Ms: r3(percentile(window.latencies, 0.99)),
        errors: window.errors,
        serverCpuUsPerRequest: us(sum(samples, serving, 'cpu')),
        primaryCpuUsPerRequest: us(
          sum(
            samples,
            serving.filter((p) => p.role === 'primary'),
            'cpu',
          ),
        ),
        workersCpuUsPerRequest: us(
          sum(
            samples,
            serving.filter((p) => p.role === 'worker'),
            'cpu',
          ),
        ),
        mainThreadsCpuUsPerRequest: us(sum(samples, serving, 'mainCpu')),
        mainThreadWakeupsPerRequest: r3(sum(samples, serving, 'mainWakeups') / n),
        minorFaultsPerRequest: r3(sum(samples, serving, 'minorFaults') / n),
        ...(TRACE_GC
          ? {
              scavengesPerKRequests: r3((gcWindow.scavenges * 1000) / n),
              fullGcs: gcWindow.fullGcs,
              gcPauseUsPerRequest: r1((gcWindow.pauseMs * 1000) / n),
              youngGenerationMb: gcWindow.freed.length > 0 ? r1(median(gcWindow.freed)) : 0,
            }
          : {}),
        systemCpuUsPerRequest: us(sum(samples, serving, 'systemCpu')),
        preemptionsPerRequest: r3(sum(samples, serving, 'preemptions') / n),
        idleShareUsPerRequest: us(idleCpuPerS * elapsed),
        serverCpuCores: r3(sum(samples, serving, 'cpu') / elapsed),
        generatorCpuUsPerRequest: us(generatorSeconds),
        generatorCpuCores: r3(generatorSeconds / elapsed),
        serverWakeupsPerRequest: r3(sum(samples, serving, 'wakeups') / n),
        meanBatchSize: r3((runsAfter.rows - runsBefore.rows) / Math.max(1, runsAfter.runs - runsBefore.runs)),
        perWorker,
        ...(syscallCounts
          ? {
              syscallsPerRequest: {
                total: r3((syscallCounts.get('all') ?? 0) / n),
                byCall: Object.fromEntries(
                  [...syscallCounts].filter(([call]) => call !== 'all').map(([call, count]) => [call, r3(count / n)]),
                ),
              },
            }
          : {}),
      };
      windows.set(String(offered), [...(windows.get(String(offered)) ?? []), result]);
      return result;
    };
    return {
      server,
      workers,
      measure,
      async stop() {
        conns.close();
        await stopChild();
        return {
          server,
          workers,
          instance,
          startedAtS: r1((startedAt - RUN_STARTED) / 1000),
          connectionsByWorker: Object.fromEntries(conns.connectionsByWorker),
          idle: idleFigures?.idle ?? { cpuMsPerS: 0, primaryCpuMsPerS: 0, workersCpuMsPerS: 0, wakeupsPerS: 0 },
          esbuildCpuMsPerS: idleFigures?.esbuildCpuMsPerS ?? 0,
          loads: [...windows.values()].map(medianWindow),
          windows: Object.fromEntries(windows),
        };
      },
    };
  } catch (error) {
    await stopChild();
    throw error;
  }
}

rmSync(dataDir, { recursive: true, force: true });
const repo = modelRepository(join(dataDir, 'repository'));
/** `unbatched` serves the same model with batching.max_batch_size 1: batching off, in the same run as `caliper`. */
const unbatchedRepo = SERVERS.includes('unbatched') ? modelRepository(join(dataDir, 'unbatched'), 1) : repo;
const loadBefore = loadavg();
const started = new Date();
const rounds: RunResult[][] = [];
const loadKeys = [...RATES.map(String), ...(CLOSED_LOOP ? ['closed'] : [])];
const offeredOf = (key: string): number | 'closed' => (key === 'closed' ? 'closed' : Number(key));
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the order so neither count always runs first.
  const order = round % 2 === 0 ? WORKER_COUNTS : [...WORKER_COUNTS].reverse();
  const configs = (round % 2 === 0 ? SERVERS : [...SERVERS].reverse()).flatMap((server) =>
    Array.from({ length: INSTANCES }, (_, instance) => order.map((workers) => ({ server, workers, instance }))).flat(),
  );
  const results: RunResult[] = [];
  const report = (result: RunResult): void => {
    const { windows: _, ...shown } = result;
    console.error(
      `round ${round + 1} ${result.server} workers ${result.workers} #${result.instance}: ${JSON.stringify(shown)}`,
    );
    results.push(result);
  };
  if (INTERLEAVE) {
    // Every server of the round up at once (the idle ones cost a few ms of CPU a second), then at each load their
    // windows taken in turn, the order reversed each time: a slow drift of the machine's load falls on all of them.
    const up: StartedServer[] = [];
    try {
      for (const { server, workers, instance } of configs)
        up.push(await startServer(server === 'unbatched' ? unbatchedRepo : repo, workers, server, instance));
      for (const key of loadKeys)
        for (let w = 0; w < WINDOWS; w++)
          for (const s of w % 2 === 0 ? up : [...up].reverse()) await s.measure(offeredOf(key));
    } finally {
      for (const s of up) report(await s.stop());
    }
  } else
    for (const { server, workers, instance } of configs) {
      const s = await startServer(server === 'unbatched' ? unbatchedRepo : repo, workers, server, instance);
      try {
        for (const key of loadKeys) for (let w = 0; w < WINDOWS; w++) await s.measure(offeredOf(key));
      } finally {
        report(await s.stop());
      }
    }
  rounds.push(results.sort((a, b) => a.workers - b.workers));
}
const loadAfter = loadavg();

const loadOf = (r: RunResult, key: string): LoadResult => r.loads.find((l) => String(l.offered) === key)!;
/** The round's servers of one kind and worker count (one per --instances). */
const runsOf = (r: RunResult[], kind: ServerKind, w: number): RunResult[] =>
  r.filter((x) => x.server === kind && x.workers === w);
/** A figure of one kind and worker count in a round: the median over its instances. */
const inRound = (r: RunResult[], kind: ServerKind, w: number, f: (x: RunResult) => number): number =>
  median(runsOf(r, kind, w).map(f));
const BASE = WORKER_COUNTS[0]!;

/** Medians, 2-÷-1 ratios and shares of one server kind's runs. */
function summarize(kind: ServerKind) {
  const summary = Object.fromEntries(
    WORKER_COUNTS.map((w) => {
      const runs = rounds.flatMap((r) => runsOf(r, kind, w));
      const med = (f: (r: RunResult) => number): number => r1(median(runs.map(f)));
      return [
        `workers_${w}`,
        {
          idleCpuMsPerS: med((r) => r.idle.cpuMsPerS),
          idlePrimaryCpuMsPerS: med((r) => r.idle.primaryCpuMsPerS),
          idleWorkersCpuMsPerS: med((r) => r.idle.workersCpuMsPerS),
          idleWakeupsPerS: med((r) => r.idle.wakeupsPerS),
          ...Object.fromEntries(
            loadKeys.map((key) => {
              const m = (f: (l: LoadResult) => number): number => r3(median(runs.map((r) => f(loadOf(r, key)))));
              return [
                key === 'closed' ? 'closedLoop' : `rate_${key}`,
                {
                  rps: m((l) => l.rps),
                  serverCpuUsPerRequest: m((l) => l.serverCpuUsPerRequest),
                  primaryCpuUsPerRequest: m((l) => l.primaryCpuUsPerRequest),
                  workersCpuUsPerRequest: m((l) => l.workersCpuUsPerRequest),
                  idleShareUsPerRequest: m((l) => l.idleShareUsPerRequest),
                  generatorCpuUsPerRequest: m((l) => l.generatorCpuUsPerRequest),
                  generatorCpuCores: m((l) => l.generatorCpuCores),
                  serverCpuCores: m((l) => l.serverCpuCores),
                  serverWakeupsPerRequest: m((l) => l.serverWakeupsPerRequest),
                  mainThreadsCpuUsPerRequest: m((l) => l.mainThreadsCpuUsPerRequest),
                  mainThreadWakeupsPerRequest: m((l) => l.mainThreadWakeupsPerRequest),
                  minorFaultsPerRequest: m((l) => l.minorFaultsPerRequest),
                  systemCpuUsPerRequest: m((l) => l.systemCpuUsPerRequest),
                  preemptionsPerRequest: m((l) => l.preemptionsPerRequest),
                  meanBatchSize: m((l) => l.meanBatchSize),
                  p99Ms: m((l) => l.p99Ms),
                  otherCpuOnServerCores: m((l) => l.otherCpuOnServerCores),
                  otherCpuOnGeneratorCore: m((l) => l.otherCpuOnGeneratorCore),
                  scavengesPerKRequests: m((l) => l.scavengesPerKRequests ?? NaN),
                  youngGenerationMb: m((l) => l.youngGenerationMb ?? NaN),
                  gcPauseUsPerRequest: m((l) => l.gcPauseUsPerRequest ?? NaN),
                  fullGcsPerWindow: m((l) => l.fullGcs ?? NaN),
                  errors: runs.reduce((n, r) => n + loadOf(r, key).errors, 0),
                },
              ];
            }),
          ),
        },
      ];
    }),
  );
  const ratioOf = (w: number, f: (r: RunResult) => number): number =>
    r3(median(rounds.map((r) => inRound(r, kind, w, f) / inRound(r, kind, BASE, f))));
  const ratios = Object.fromEntries(
    WORKER_COUNTS.slice(1).map((w) => [
      `workers_${w}_vs_${BASE}`,
      {
        // Per round (same conditions), then the median of the rounds.
        ...Object.fromEntries(
          loadKeys.map((key) => [
            key === 'closed' ? 'closedLoop' : `rate_${key}`,
            {
              serverCpuPerRequest: ratioOf(w, (r) => loadOf(r, key).serverCpuUsPerRequest),
              serverCpuPerRequestLessIdle: ratioOf(
                w,
                (r) => loadOf(r, key).serverCpuUsPerRequest - loadOf(r, key).idleShareUsPerRequest,
              ),
              ...(key === 'closed' ? { throughput: ratioOf(w, (r) => loadOf(r, key).rps) } : {}),
            },
          ]),
        ),
        idleCpu: ratioOf(w, (r) => r.idle.cpuMsPerS),
      },
    ]),
  );
  const shares = Object.fromEntries(
    WORKER_COUNTS.filter((w) => w > 1).map((w) => [
      `workers_${w}`,
      Object.fromEntries(
        loadKeys.map((key) => [
          key === 'closed' ? 'closedLoop' : `rate_${key}`,
          rounds.flatMap((r) =>
            runsOf(r, kind, w).map((run) =>
              Object.fromEntries(Object.entries(loadOf(run, key).perWorker).map(([s, v]) => [s, v.share])),
            ),
          ),
        ]),
      ),
    ]),
  );

  return { summary, ratios, shares };
}

/** Median, quartiles, extremes and the median's 95 % confidence interval (order statistics) of a sample. */
interface Spread {
  median: number;
  p25: number;
  p75: number;
  min: number;
  max: number;
  n: number;
  /** Order-statistic bounds of the median's 95 % interval (the whole range when n < 6). */
  ci95: [number, number];
  /** (p75 - p25) / median: the per-window spread to set beside the target's 10 %. */
  relativeIqr: number;
}
function spreadOf(values: number[]): Spread {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = s.length;
  const half = 0.98 * Math.sqrt(n);
  const lo = Math.max(1, Math.floor(n / 2 - half));
  const hi = Math.min(n, Math.ceil(n / 2 + 1 + half));
  const med = median(s);
  return {
    median: r3(med),
    p25: r3(percentile(s, 0.25)),
    p75: r3(percentile(s, 0.75)),
    min: r3(s[0] ?? NaN),
    max: r3(s[n - 1] ?? NaN),
    n,
    ci95: [r3(s[lo - 1] ?? NaN), r3(s[hi - 1] ?? NaN)],
    relativeIqr: r3((percentile(s, 0.75) - percentile(s, 0.25)) / med),
  };
}
const windowCpu = (r: RunResult[], kind: ServerKind, w: number, key: string, i: number): number =>
  median(
    runsOf(r, kind, w)
      .map((x) => x.windows[key]?.[i]?.serverCpuUsPerRequest)
      .filter((v): v is number => v !== undefined),
  );
/**
 * Per window pair: N workers ÷ BASE server CPU per request from the windows taken in the same cycle of the same round
 * (interleaved: seconds apart), every round's pairs together.
 */
function windowRatios(kind: ServerKind, w: number, key: string): number[] {
  const out: number[] = [];
  for (const r of rounds)
    for (let i = 0; i < WINDOWS; i++) out.push(windowCpu(r, kind, w, key, i) / windowCpu(r, kind, BASE, key, i));
  return out.filter(Number.isFinite);
}
/** Per window: the N-worker server's extra µs per request over BASE, minus the floor's extra in the same window. */
function windowExcessUs(w: number, key: string): number[] {
  const out: number[] = [];
  for (const r of rounds)
    for (let i = 0; i < WINDOWS; i++)
      out.push(
        windowCpu(r, 'caliper', w, key, i) -
          windowCpu(r, 'caliper', BASE, key, i) -
          (windowCpu(r, 'bare', w, key, i) - windowCpu(r, 'bare', BASE, key, i)),
      );
  return out.filter(Number.isFinite);
}
const keyName = (key: string): string => (key === 'closed' ? 'closedLoop' : `rate_${key}`);
/**
 * The reading the targets are decided on: per load, the per-window 2-÷-1 ratios of Caliper and of the floor with their
 * spread, and Caliper's excess over the floor (per window: Caliper's ratio ÷ the floor's, and the µs per request the
 * second process adds beyond what it adds to the floor).
 */
const perWindow = Object.fromEntries(
  WORKER_COUNTS.slice(1).map((w) => [
    `workers_${w}_vs_${BASE}`,
    Object.fromEntries(
      loadKeys.map((key) => {
        const caliperRatios = SERVERS.includes('caliper') ? windowRatios('caliper', w, key) : [];
        const floorRatios = SERVERS.includes('bare') ? windowRatios('bare', w, key) : [];
        const both = caliperRatios.length > 0 && floorRatios.length === caliperRatios.length;
        return [
          keyName(key),
          {
            caliper: caliperRatios.length > 0 ? spreadOf(caliperRatios) : undefined,
            floor: floorRatios.length > 0 ? spreadOf(floorRatios) : undefined,
            caliperOverFloor: both ? spreadOf(caliperRatios.map((c, i) => c / floorRatios[i]!)) : undefined,
            excessUsPerRequest: both ? spreadOf(windowExcessUs(w, key)) : undefined,
            ...Object.fromEntries(
              SERVERS.filter((k) => k !== 'caliper' && k !== 'bare').map((k) => [k, spreadOf(windowRatios(k, w, key))]),
            ),
            caliperByWindow: caliperRatios.map(r3),
            floorByWindow: floorRatios.map(r3),
          },
        ];
      }),
    ),
  ]),
);
/**
 * Within each server, its first half of windows ÷ its second half (median CPU per request), and with --instances ≥ 2
 * the spread between instances of one configuration (max ÷ min of their medians): a trend says the server was still
 * warming (or the machine drifting), an instance spread that a server's whole life reads high or low.
 */
const stability = Object.fromEntries(
  SERVERS.flatMap((kind) =>
    WORKER_COUNTS.map((w) => [
      `${kind}_${w}`,
      Object.fromEntries(
        loadKeys.map((key) => {
          const runs = rounds.flatMap((r) => runsOf(r, kind, w));
          const trend = runs.map((x) => {
            const cpu = (x.windows[key] ?? []).map((l) => l.serverCpuUsPerRequest);
            const h = Math.floor(cpu.length / 2);
            return h > 0 ? r3(median(cpu.slice(0, h)) / median(cpu.slice(cpu.length - h))) : NaN;
          });
          const instanceSpread = rounds
            .map((r) => runsOf(r, kind, w).map((x) => loadOf(x, key).serverCpuUsPerRequest))
            .filter((v) => v.length > 1)
            .map((v) => r3(Math.max(...v) / Math.min(...v)));
          return [keyName(key), { firstHalfOverSecondHalf: trend, instanceMaxOverMin: instanceSpread }];
        }),
      ),
    ]),
  ),
);
const measured = Object.fromEntries(SERVERS.map((kind) => [kind, summarize(kind)]));
const caliper = measured.caliper;
const floor = measured.bare;
/** Per round: Caliper's (N workers ÷ 1) server CPU per request over the floor's, then the median of the rounds. */
const cpuRatio = (r: RunResult[], kind: ServerKind, w: number, key: string): number =>
  inRound(r, kind, w, (x) => loadOf(x, key).serverCpuUsPerRequest) /
  inRound(r, kind, BASE, (x) => loadOf(x, key).serverCpuUsPerRequest);
const overFloor =
  caliper && floor
    ? Object.fromEntries(
        WORKER_COUNTS.slice(1).map((w) => [
          `workers_${w}_vs_${BASE}`,
          Object.fromEntries(
            loadKeys.map((key) => [
              keyName(key),
              r3(median(rounds.map((r) => cpuRatio(r, 'caliper', w, key) / cpuRatio(r, 'bare', w, key)))),
            ]),
          ),
        ]),
      )
    : undefined;
/** Per worker count: Caliper's server CPU per request over the `before` checkout's, per round, median. */
const changeOverBefore = SERVERS.includes('before')
  ? Object.fromEntries(
      WORKER_COUNTS.map((w) => [
        `workers_${w}`,
        Object.fromEntries(
          loadKeys.map((key) => [
            keyName(key),
            r3(
              median(
                rounds.map(
                  (r) =>
                    inRound(r, 'caliper', w, (x) => loadOf(x, key).serverCpuUsPerRequest) /
                    inRound(r, 'before', w, (x) => loadOf(x, key).serverCpuUsPerRequest),
                ),
              ),
            ),
          ]),
        ),
      ]),
    )
  : undefined;
const command = `node --import tsx ${process.argv
  .slice(1)
  .join(' ')
  .replace(/^.*?bench\//, 'bench/')}`;
const output = {
  benchmark:
    'caliper serve --workers N: server CPU per request at the same offered rates, idle cost, request shares (fraud_detector, cache off)',
  command,
  started: started.toISOString(),
  finished: new Date().toISOString(),
  machine: {
    cores: CORES,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    loadAverageBefore: loadBefore.map(r3),
    loadAverageAfter: loadAfter.map(r3),
    generatorCore: GENERATOR_CORE,
    serverCores: SERVER_CORES,
    layout: LAYOUT,
  },
  connections: CONNECTIONS_PER_WORKER > 0 ? `${CONNECTIONS_PER_WORKER} per worker` : CONNECTIONS,
  windows: WINDOWS,
  instances: INSTANCES,
  interleave: INTERLEAVE,
  seconds: SECONDS,
  /** Per load: the per-window ratios (N workers ÷ 1) of Caliper and the floor, their spread, Caliper's excess. */
  perWindow,
  /** Per server: first half of its windows ÷ second half, and instance ÷ instance (--instances ≥ 2). */
  stability,
  summary: caliper?.summary,
  ratios: caliper?.ratios,
  workerShares: caliper?.shares,
  /** The floor: bench/echo-server.ts (no model, no pipeline) as one process and as node:cluster workers. */
  floor: floor ? { summary: floor.summary, ratios: floor.ratios, workerShares: floor.shares } : undefined,
  /** Caliper's ratio of server CPU per request (N workers ÷ 1) divided by the floor's, per round, median. */
  caliperRatioOverFloorRatio: overFloor,
  /** With --servers …,before: the other checkout's summary and ratios, and Caliper ÷ before per worker count. */
  before: measured.before
    ? { root: BEFORE_ROOT, summary: measured.before.summary, ratios: measured.before.ratios }
    : undefined,
  caliperOverBefore: changeOverBefore,
  /** With --servers …,unbatched: the same server with max_batch_size 1, measured in the same run. */
  unbatched: measured.unbatched
    ? { summary: measured.unbatched.summary, ratios: measured.unbatched.ratios }
    : undefined,
  rounds,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
const outArg = process.argv.indexOf('--out');
writeFileSync(
  outArg >= 0
    ? process.argv[outArg + 1]!
    : join(root, `bench/results/workers${LAYOUT === 'split' ? '' : `-${LAYOUT}`}.json`),
  `${JSON.stringify(output, null, 2)}\n`,
);
/** One line per load: the ratio, its spread, the floor's, Caliper's excess over the floor. */
const spreadText = (x: Spread | undefined, unit = '×'): string =>
  x === undefined ? '-' : `${x.median}${unit} (IQR ${x.p25}-${x.p75}, 95% CI ${x.ci95[0]}-${x.ci95[1]}, n ${x.n})`;
for (const [pair, byLoad] of Object.entries(perWindow))
  for (const [load, v] of Object.entries(byLoad)) {
    const others = SERVERS.filter((k) => k !== 'caliper' && k !== 'bare').map(
      (k) => `; ${k} ${spreadText((v as unknown as Record<string, Spread | undefined>)[k])}`,
    );
    console.error(
      `${pair} ${load}: caliper ${spreadText(v.caliper)}; floor ${spreadText(v.floor)}; caliper ÷ floor ${spreadText(
        v.caliperOverFloor,
      )}; excess ${spreadText(v.excessUsPerRequest, ' µs/request')}${others.join('')}`,
    );
  }
console.log(
  JSON.stringify(
    {
      command,
      perWindow,
      stability,
      summary: caliper?.summary,
      ratios: caliper?.ratios,
      workerShares: caliper?.shares,
      floorRatios: floor?.ratios,
      caliperRatioOverFloorRatio: overFloor,
      beforeRatios: measured.before?.ratios,
      caliperOverBefore: changeOverBefore,
      floorSummary: floor?.summary,
      load: [loadBefore, loadAfter].map((l) => l.map(r3)),
    },
    null,
    2,
  ),
);
rmSync(dataDir, { recursive: true, force: true });
