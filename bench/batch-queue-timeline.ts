/*
 * Where the time of a `--queue` job goes (issue 18, two workers ÷ one): the same job as bench/batch.ts section 4 (a
 * private redis-server, N `caliper worker`s from dist/ started and warmed by a job first, then 1M Parquet rows in
 * 100k-row shards to a folder of parts), with CALIPER_BATCH_TRACE=1 in the submitter and the workers, so their marks
 * (epoch ms, one clock) sort into one timeline: submitter start → shards planned → queued → each shard picked up, plan
 * ready, part committed, recorded, completed in BullMQ → each status read of the submitter → summary. Per run it prints
 * the timeline relative to the submitter's start, each worker's busy time (pick-up to completion), its idle gaps, the
 * serial part (start → first pick-up, last completion → summary) and each process's CPU for the timed job (/proc).
 * One and two workers alternate round by round (`--workers 1,2`, the order reversed every other round).
 *
 *   node --import tsx bench/batch-queue-timeline.ts [--rounds 3] [--workers 1,2] [--chunk-rows 100000] [--no-build]
 *     [--quiet] [--unpinned] [--out FILE]
 *
 * Run it under the bench lock: flock /tmp/caliper-bench.lock nice -n 10 node --import tsx bench/batch-queue-timeline.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startPrivateRedis } from '../test/support/redis-server.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: '1,2' },
    'chunk-rows': { type: 'string', default: '100000' },
    'no-build': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    unpinned: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/batch-queue-timeline.json' },
    cli: { type: 'string', default: 'dist/cli/main.js' },
  },
});
const ROUNDS = Number(args.rounds);
const COUNTS = args.workers.split(',').map(Number);
const CLI = args.cli;
const WORK = 'tmp/bench-queue-timeline';
const INPUT = 'bench/data/fraud-1m.parquet';
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

if (!args['no-build']) {
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
}
const MODEL = join(WORK, 'fraud_detector');
mkdirSync(join(MODEL, '1'), { recursive: true });
copyFileSync('examples/fraud-detector/model.yaml', join(MODEL, 'model.yaml'));
copyFileSync('examples/fraud-detector/1/model.onnx', join(MODEL, '1', 'model.onnx'));

interface Mark {
  at: number;
  pid: number;
  /** The process's CPU ms so far. */
  cpu: number;
  event: string;
}

const TRACE_LINE = /^\[trace\] (\d+(?:\.\d+)?) (\d+) (\d+(?:\.\d+)?) (.*)$/;

function marksOf(text: string): Mark[] {
  const marks: Mark[] = [];
  for (const line of text.split('\n')) {
    const m = TRACE_LINE.exec(line);
    if (m) marks.push({ at: Number(m[1]), pid: Number(m[2]), cpu: Number(m[3]), event: m[4]! });
  }
  return marks;
}

/** CPU seconds (user + system, all threads) of a live process, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Busy and total jiffies of the whole machine (/proc/stat), for its idle share during the timed job. */
function machineJiffies(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - fields[3]! - fields[4]!, total };
}

/** The private redis-server's pid (the one listening on `port`). */
function redisPid(port: number): number {
  const out = spawnSync('pgrep', ['-f', `redis-server.*${port}`], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n');
  return Number(out[0]);
}

interface WorkerProcess {
  child: ChildProcess;
  stderr: string;
}

function startWorkers(url: string, n: number): Promise<WorkerProcess[]> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<WorkerProcess>((resolve, reject) => {
          // One worker per core, each pinned to its own, as bench/batch.ts runs them (unless --unpinned).
          const pin = args.unpinned ? [] : ['--cpu', String(i % availableParallelism())];
          const child = spawn(process.execPath, [CLI, 'worker', '--queue', url, ...pin], {
            stdio: ['ignore', 'ignore', 'pipe'],
            env: { ...process.env, CALIPER_BATCH_TRACE: '1' },
          });
          const worker: WorkerProcess = { child, stderr: '' };
          child.stderr!.on('data', (d: Buffer) => {
            worker.stderr += d.toString();
            if (worker.stderr.includes('waiting for shards')) resolve(worker);
          });
          child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${worker.stderr}`)));
        }),
    ),
  );
}

function stopWorkers(workers: WorkerProcess[]): Promise<unknown> {
  return Promise.all(
    workers.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          child.removeAllListeners('exit');
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

function submit(
  url: string,
  output: string,
  extra: string[],
): Promise<{ summary: { rowsPerSecond: number; seconds: number }; stderr: string; cpuS: number }> {
  rmSync(output, { recursive: true, force: true });
  return new Promise((resolve, reject) => {
    const child = spawn(
      '/usr/bin/time',
      [
        '-f',
        '__time %U %S',
        process.execPath,
        CLI,
        'batch',
        '--model',
        MODEL,
        '--input',
        INPUT,
        '--output',
        output,
        '--batch-size',
        '8192',
        '--json',
        '--no-progress',
        '--overwrite',
        '--queue',
        url,
        ...extra,
      ],
      { env: { ...process.env, CALIPER_BATCH_TRACE: '1' } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`caliper batch exited ${code}: ${stderr.slice(-2000)}`));
      const time = stderr
        .split('\n')
        .find((l) => l.startsWith('__time '))!
        .split(' ')
        .slice(1)
        .map(Number);
      resolve({ summary: JSON.parse(stdout.trim().split('\n').pop()!), stderr, cpuS: time[0]! + time[1]! });
    });
  });
}

interface RunResult {
  workers: number;
  round: number;
  rowsPerSecond: number;
  seconds: number;
  load: string;
  submitterCpuS: number;
  /** The submitter's CPU from its start mark to its summary mark. */
  submitterTimedCpuMs: number;
  redisCpuS: number;
  /** Busy share of both cores from the submitter's start mark to its summary mark (/proc/stat, 10 ms jiffies). */
  machineBusy: number;
  workerCpuS: number[];
  /** ms from the submitter's start. */
  firstPickUpMs: number;
  lastCompletedMs: number;
  summaryMs: number;
  perWorker: { shards: number; busyMs: number; idleGapsMs: number[] }[];
  timeline: { ms: number; who: string; cpuMs: number; event: string }[];
}

function analyse(n: number, round: number, marks: Mark[], submitterPid: number, workerPids: number[]): RunResult {
  marks.sort((a, b) => a.at - b.at);
  const t0 = marks.find((m) => m.pid === submitterPid && m.event === 'submitter: start')!.at;
  const rel = (m: Mark): number => m.at - t0;
  const who = (pid: number): string => (pid === submitterPid ? 'submitter' : `worker ${workerPids.indexOf(pid) + 1}`);
  const picks = marks.filter((m) => m.event.startsWith('worker: picked'));
  const completes = marks.filter((m) => m.event.startsWith('worker: completed'));
  const perWorker = workerPids.map((pid) => {
    const mine = marks.filter((m) => m.pid === pid);
    const spans: [number, number][] = [];
    let open: number | undefined;
    for (const m of mine) {
      if (m.event.startsWith('worker: picked')) open = rel(m);
      if (m.event.startsWith('worker: completed') && open !== undefined) {
        spans.push([open, rel(m)]);
        open = undefined;
      }
    }
    const gaps = spans.slice(1).map((s, i) => s[0] - spans[i]![1]);
    return { shards: spans.length, busyMs: spans.reduce((a, s) => a + s[1] - s[0], 0), idleGapsMs: gaps };
  });
  return {
    workers: n,
    round,
    rowsPerSecond: 0,
    seconds: 0,
    load: load(),
    submitterCpuS: 0,
    submitterTimedCpuMs:
      marks.find((m) => m.event === 'submitter: summary')!.cpu - marks.find((m) => m.event === 'submitter: start')!.cpu,
    redisCpuS: 0,
    machineBusy: 0,
    workerCpuS: [],
    firstPickUpMs: Math.min(...picks.map(rel)),
    lastCompletedMs: Math.max(...completes.map(rel)),
    summaryMs: rel(marks.find((m) => m.event === 'submitter: summary')!),
    perWorker,
    timeline: marks.map((m) => ({
      ms: Math.round(rel(m) * 10) / 10,
      who: who(m.pid),
      cpuMs: Math.round(m.cpu * 10) / 10,
      event: m.event,
    })),
  };
}

const redis = await startPrivateRedis();
const results: RunResult[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? COUNTS : [...COUNTS].reverse();
    for (const n of order) {
      const workers = await startWorkers(redis.url, n);
      await submit(redis.url, join(WORK, 'warm'), ['--chunk-rows', '250000', '--keep', 'transaction_id']);
      for (const w of workers) w.stderr = '';
      const cpuBefore = workers.map((w) => cpuSeconds(w.child.pid!));
      const redisBefore = cpuSeconds(redisPid(redis.port));
      const samples: { at: number; busy: number; total: number }[] = [];
      const sampler = setInterval(
        () => samples.push({ at: performance.timeOrigin + performance.now(), ...machineJiffies() }),
        5,
      );
      const run = await submit(redis.url, join(WORK, `workers-${n}`), [
        '--chunk-rows',
        args['chunk-rows'],
        '--format',
        'parquet',
      ]);
      const workerCpuS = workers.map((w, i) => cpuSeconds(w.child.pid!) - cpuBefore[i]!);
      const redisCpuS = cpuSeconds(redisPid(redis.port)) - redisBefore;
      clearInterval(sampler);
      const submitterMarks = marksOf(run.stderr);
      const submitterPid = submitterMarks[0]!.pid;
      const result = analyse(
        n,
        round + 1,
        [...submitterMarks, ...workers.flatMap((w) => marksOf(w.stderr))],
        submitterPid,
        workers.map((w) => w.child.pid!),
      );
      result.rowsPerSecond = Math.round(run.summary.rowsPerSecond);
      result.seconds = run.summary.seconds;
      result.submitterCpuS = run.cpuS;
      result.workerCpuS = workerCpuS.map((c) => Math.round(c * 100) / 100);
      result.redisCpuS = redisCpuS;
      // The samples nearest the submitter's start and summary marks.
      const t0 = submitterMarks.find((m) => m.event === 'submitter: start')!.at;
      const t1 = submitterMarks.find((m) => m.event === 'submitter: summary')!.at;
      const from = [...samples].reverse().find((x) => x.at <= t0) ?? samples[0]!;
      const to = samples.find((x) => x.at >= t1) ?? samples.at(-1)!;
      result.machineBusy = (to.busy - from.busy) / (to.total - from.total);
      results.push(result);
      await stopWorkers(workers);
      if (!args.quiet)
        for (const t of result.timeline)
          console.log(
            `  ${t.ms.toFixed(1).padStart(7)} ms  ${t.who.padEnd(9)} cpu ${t.cpuMs.toFixed(0).padStart(5)} ms  ${t.event}`,
          );
      console.log(
        `round ${round + 1}, ${n} worker(s): ${result.rowsPerSecond} rows/s (${(result.seconds * 1000).toFixed(0)} ms); first pick-up ${result.firstPickUpMs.toFixed(0)} ms, last completion ${result.lastCompletedMs.toFixed(0)} ms, summary ${result.summaryMs.toFixed(0)} ms; per worker ${result.perWorker.map((w) => `${w.shards} shards busy ${w.busyMs.toFixed(0)} ms gaps [${w.idleGapsMs.map((g) => g.toFixed(0)).join(' ')}]`).join('; ')}; worker CPU ${result.workerCpuS.join(' + ')} s, submitter CPU ${result.submitterTimedCpuMs.toFixed(0)} ms timed (${run.cpuS.toFixed(2)} s whole process), redis ${(redisCpuS * 1000).toFixed(0)} ms, both cores busy ${(result.machineBusy * 100).toFixed(0)}% from start to summary; load ${result.load}`,
      );
    }
  }
} finally {
  await redis.dispose();
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const of = (n: number): number[] => results.filter((r) => r.workers === n).map((r) => r.rowsPerSecond);
if (COUNTS.includes(1) && COUNTS.includes(2)) {
  const ratios = of(2).map((two, i) => two / of(1)[i]!);
  console.log(
    `two ÷ one per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}; median(two) ÷ median(one) ${(median(of(2)) / median(of(1))).toFixed(2)}`,
  );
}
mkdirSync('bench/results', { recursive: true });
writeFileSync(args.out, `${JSON.stringify({ command: process.argv.slice(1).join(' '), results }, null, 2)}\n`);
