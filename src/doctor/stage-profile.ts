import type { StepResult } from '../bench/bench-report.ts';
import { runBench, startLoad, type LoadPlan } from '../bench/bench-runner.ts';
import { HttpLoadTarget, inferencePath, type LoadClient, type LoadTarget } from '../bench/load-target.ts';
import { LatencyHistogram } from '../bench/latency-histogram.ts';
import { meanInterval, round, summarizeLatency, type MeanInterval } from '../bench/measurement-window.ts';
import { fetchServerStats } from '../bench/server-stats.ts';
import type { RequestData } from '../bench/request-data.ts';
import { PIPELINE_STAGES } from '../pipeline/stage-timings.ts';

/** The stages a doctor breakdown names: the pipeline's, in request order, then the client's view of the rest. */
export const PROFILE_STAGES = [...PIPELINE_STAGES, 'network'] as const;
export type ProfileStage = (typeof PROFILE_STAGES)[number];

/** How the load is offered: open loop at a rate (requests/s), or closed loop with C connections. */
export type DoctorLoad = { mode: 'rate'; rate: number } | { mode: 'concurrency'; concurrency: number };

/** One request as the client saw it: latency (ms, from its send or, open loop, its scheduled time) and its stages. */
export interface RequestSample {
  latencyMs: number;
  /** performance.now() when the answer came. */
  at: number;
  stages: Partial<Record<ProfileStage, number>>;
}

/**
 * What one measurement of a served model found, in milliseconds.
 * - `meanMs`: each stage's mean over every request of the measured windows (Server-Timing);
 * - `tailMs`: each stage's mean over the tail, the requests at or above the p99 latency (at least 5 of them):
 *   the figures that explain the p99. `network` is the client's latency minus the server's total (transfer,
 *   HTTP parsing, and in open loop the wait for a free connection).
 */
export interface StageProfile {
  load: DoctorLoad;
  /** Seconds of load the figures cover (the measured windows, summed over pooled rounds). */
  measuredS: number;
  requests: number;
  errors: number;
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /**
   * The 95% interval of p99 given how many answers it was read from (p99Interval over the answers that came while the
   * generator ran, each timed from its send): a second measurement of the same server reads a p99 in this range about
   * 19 times in 20 from sampling alone. When the server fell behind, the generator times answers from their scheduled
   * send and p99 may lie outside it (the wait in the generator's backlog is not in the interval's latencies).
   */
  p99IntervalMs?: { low: number; high: number };
  meanMs: Partial<Record<ProfileStage, number>>;
  /**
   * Each stage mean's 95% interval from the answers' spread (mean ± 1.96·sd/√n, meanInterval), as `caliper bench`
   * gives it (serverTimingInterval): a separate measurement's mean outside it differs by more than sampling.
   */
  meanIntervalMs?: Partial<Record<ProfileStage, MeanInterval>>;
  tailMs: Partial<Record<ProfileStage, number>>;
  tailRequests: number;
  /** Requests answered from the response cache during the windows (server statistics), and the share of all. */
  cacheHitShare: number;
  /** Mean requests per model execution (server statistics); 1 without batching. */
  meanBatchSize: number | null;
  /**
   * A fresh server's first answers (those of the warm-up period before the windows, left out of every figure
   * above): the cold path a version's first requests take after it starts. Absent for a server measured already.
   */
  cold?: ColdStart;
}

/** The answers of a fresh server's first warm-up period: how many, their p99 and slowest latency (ms). */
export interface ColdStart {
  requests: number;
  p99Ms: number;
  maxMs: number;
}

/** The cold figures of a set of answers; undefined when there are none. */
export function coldStartOf(samples: readonly RequestSample[]): ColdStart | undefined {
  if (samples.length === 0) return undefined;
  const histogram = new LatencyHistogram();
  for (const s of samples) histogram.recordMs(s.latencyMs);
  return { requests: samples.length, p99Ms: round(histogram.percentileMs(99)), maxMs: round(histogram.maxMs) };
}

const TAIL_MIN = 5;

/**
 * The 95% interval of the 99th percentile of a sample, by order statistics (no assumption on the distribution): the
 * count of answers under the true p99 is Binomial(n, 0.99), so with about 95% confidence the true p99 lies between the
 * answers ranked n·0.99 ∓ 1.96·√(n·0.99·0.01) (1-based, ascending, clamped to the sample). `sortedMs` ascending;
 * undefined when empty. 1000 answers: the 18th- to the 4th-slowest; 500: the 11th-slowest to the slowest.
 */
export function p99Interval(sortedMs: readonly number[]): { low: number; high: number } | undefined {
  const n = sortedMs.length;
  if (n === 0) return undefined;
  const spread = 1.96 * Math.sqrt(n * 0.99 * 0.01);
  const lowRank = Math.min(n, Math.max(1, Math.floor(n * 0.99 - spread)));
  const highRank = Math.min(n, Math.max(1, Math.ceil(n * 0.99 + spread)));
  return { low: round(sortedMs[lowRank - 1]!), high: round(sortedMs[highRank - 1]!) };
}

function parseTiming(header: string): Partial<Record<ProfileStage, number>> & { total?: number } {
  const out: Record<string, number> = {};
  for (const entry of header.split(',')) {
    const semicolon = entry.indexOf(';');
    const dur = entry.indexOf('dur=');
    if (semicolon < 0 || dur < 0) continue;
    out[entry.slice(0, semicolon).trim()] = Number(entry.slice(dur + 4));
  }
  return out;
}

/**
 * A load target that keeps every answered request's latency and Server-Timing stages, so the tail (the slowest
 * requests) can be broken down by stage: means alone hide which stage makes p99.
 */
export class TailRecordingTarget implements LoadTarget {
  readonly description: string;
  readonly samples: RequestSample[] = [];

  constructor(private readonly inner: LoadTarget) {
    this.description = inner.description;
  }

  createClient(): LoadClient {
    const client = this.inner.createClient();
    return {
      send: (done) => {
        const sentAt = performance.now();
        client.send((outcome) => {
          if (outcome.ok && outcome.serverTiming) {
            const timing = parseTiming(outcome.serverTiming);
            const at = performance.now();
            const latencyMs = at - sentAt;
            const stages: Partial<Record<ProfileStage, number>> = {};
            for (const stage of PIPELINE_STAGES) if (timing[stage] !== undefined) stages[stage] = timing[stage];
            if (timing.total !== undefined) stages.network = Math.max(0, latencyMs - timing.total);
            this.samples.push({ latencyMs, at, stages });
          }
          done(outcome);
        });
      },
      close: () => client.close(),
    };
  }
}

/** A stage's mean over a set of answers (ms), with its 95% interval (undefined under 2 answers) and the answer count. */
export interface StageMean {
  meanMs: number;
  interval: MeanInterval | undefined;
  answers: number;
}

/**
 * The mean of `stage` over a set of answers, an answer that skipped the stage counting 0 (as meanMs and `caliper
 * bench` count it: a cache hit skips inference); undefined when no answer timed it.
 */
export function stageMeanOf(samples: readonly RequestSample[], stage: ProfileStage): StageMean | undefined {
  let sum = 0;
  let squares = 0;
  let timed = false;
  for (const s of samples) {
    const ms = s.stages[stage];
    if (ms === undefined) continue;
    timed = true;
    sum += ms;
    squares += ms * ms;
  }
  const n = samples.length;
  return timed ? { meanMs: round(sum / n, 4), interval: meanInterval(sum, squares, n), answers: n } : undefined;
}

/** Each stage mean's 95% interval over a set of answers (stageMeanOf), for the stages with one. */
function stageIntervals(samples: readonly RequestSample[]): Partial<Record<ProfileStage, MeanInterval>> {
  const out: Partial<Record<ProfileStage, MeanInterval>> = {};
  for (const stage of PROFILE_STAGES) {
    const interval = stageMeanOf(samples, stage)?.interval;
    if (interval) out[stage] = interval;
  }
  return out;
}

function meanStages(samples: readonly RequestSample[]): Partial<Record<ProfileStage, number>> {
  const sums: Partial<Record<ProfileStage, number>> = {};
  for (const s of samples)
    for (const [stage, ms] of Object.entries(s.stages))
      sums[stage as ProfileStage] = (sums[stage as ProfileStage] ?? 0) + ms;
  const out: Partial<Record<ProfileStage, number>> = {};
  for (const stage of PROFILE_STAGES)
    if (sums[stage] !== undefined) out[stage] = round(sums[stage]! / samples.length, 3);
  return out;
}

/** The tail of a set of samples: those at or above the p99 latency, at least TAIL_MIN (the slowest ones). */
export function tailOf<T extends { latencyMs: number }>(samples: readonly T[]): T[] {
  const sorted = [...samples].sort((a, b) => b.latencyMs - a.latencyMs);
  const count = Math.min(sorted.length, Math.max(TAIL_MIN, Math.ceil(sorted.length * 0.01)));
  return sorted.slice(0, count);
}

export interface MeasureOptions {
  url: string;
  model: string;
  data: RequestData;
  load: DoctorLoad;
  /** Measurement window (ms; default 1500). */
  windowMs?: number;
  /** Load before the first window, left out of the figures (ms; default min(windowMs, 1000), as `caliper bench`). */
  warmupMs?: number;
  /**
   * Windows combined into the figures, and the most run (default 3 and 3: what `caliper bench --max-trials 3`
   * measures, so the two agree on a queue that keeps growing, which never meets a stability rule).
   */
  windows?: number;
  maxWindows?: number;
}

/** One measurement of a served model: the generator's step over its windows and every answer kept for the tail. */
export interface StageRound {
  step: StepResult;
  samples: RequestSample[];
  /** The answers of the warm-up period before the windows (left out of the figures). */
  warmupSamples: RequestSample[];
  /** Milliseconds of load the step's figures cover (its combined windows). */
  measuredMs: number;
  /**
   * performance.now() when the generator stopped: answers after it (a backlog draining) are in `samples` but not in
   * the step's latency figures, and are left out of p99's interval.
   */
  endedAt?: number;
}

/** The bench plan of a doctor's load: one step, open loop on Poisson arrivals at the rate, or closed loop. */
export function loadPlanOf(load: DoctorLoad): LoadPlan {
  return load.mode === 'rate'
    ? { mode: 'rate', rates: [load.rate], distribution: 'poisson' }
    : { mode: 'concurrency', levels: [load.concurrency] };
}

/** The step's load figure: requests/s (open loop) or connections (closed loop). */
const loadOf = (load: DoctorLoad): number => (load.mode === 'rate' ? load.rate : load.concurrency);

/** Drives the load against a running server with Caliper's generator and keeps the measured windows' answers. */
export async function measureRound(options: MeasureOptions): Promise<StageRound> {
  const windowMs = options.windowMs ?? 1500;
  const inner = new HttpLoadTarget(options.url, inferencePath('predict', options.model), options.data);
  const target = new TailRecordingTarget(inner);
  const plan = loadPlanOf(options.load);
  const warmupMs = options.warmupMs ?? Math.min(windowMs, 1000);
  const maxWindows = options.maxWindows ?? 3;
  const startedAt = performance.now();
  const report = await runBench({
    target,
    url: options.url,
    model: options.model,
    protocol: 'predict',
    data: { source: options.data.source, requests: options.data.documents.length },
    plan,
    windowMs,
    warmupMs,
    stability: { windows: Math.min(options.windows ?? 3, maxWindows), maxTrials: maxWindows },
  });
  const endedAt = performance.now();
  // The warm-up's answers are left out, as the generator leaves them out of its windows.
  const measuredFrom = startedAt + warmupMs;
  const windows = Math.min(options.windows ?? 3, maxWindows);
  return {
    step: report.steps[0]!,
    measuredMs: windowMs * windows,
    endedAt,
    samples: target.samples.filter((s) => s.at >= measuredFrom),
    warmupSamples: target.samples.filter((s) => s.at < measuredFrom),
  };
}

/**
 * Drives the load against a running server for `ms` milliseconds and measures nothing: a fresh server's first
 * answers (ONNX Runtime's first runs, JIT, connections opening) and the backlog they leave behind happen here, so a
 * round measured after it starts from a warm server, as the rounds of a server measured already do. Settle the server
 * afterwards (settleServer) before measuring it or another server.
 */
export async function primeServer(
  options: Pick<MeasureOptions, 'url' | 'model' | 'data' | 'load'> & { ms: number },
): Promise<void> {
  const target = new HttpLoadTarget(options.url, inferencePath('predict', options.model), options.data);
  const running = startLoad(target, loadPlanOf(options.load), loadOf(options.load));
  await new Promise((resolve) => setTimeout(resolve, options.ms));
  await running.stop();
}

/**
 * Waits until a server has done the work a round left behind, its inference count no longer moving between two reads
 * `intervalMs` apart (at most `maxMs`): an overloaded server still answers its queue after the generator stops, and
 * that work must not land in the next round, measured on another server of the same machine. Resolves at once when
 * the server has no statistics endpoint.
 */
export async function settleServer(
  url: string,
  model: string,
  { intervalMs = 200, maxMs = 10_000 }: { intervalMs?: number; maxMs?: number } = {},
): Promise<void> {
  const deadline = performance.now() + maxMs;
  let last = (await fetchServerStats(url, model))?.inferenceCount;
  while (last !== undefined && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const now = (await fetchServerStats(url, model))?.inferenceCount;
    if (now === last) return;
    last = now;
  }
}

/** Drives the load against a running server with Caliper's generator and profiles the measured windows. */
export async function measureStages(options: MeasureOptions): Promise<StageProfile> {
  const measured = await measureRound(options);
  return profileOf(measured, options.load);
}

/** The latencies (ms, ascending) of a round's answers that came while the generator ran (see StageRound.endedAt). */
const recordedLatencies = ({ samples, endedAt }: Pick<StageRound, 'samples' | 'endedAt'>): number[] =>
  samples
    .filter((s) => endedAt === undefined || s.at <= endedAt)
    .map((s) => s.latencyMs)
    .sort((a, b) => a - b);

/** Builds the profile of one bench step from the samples kept over its windows. */
export function profileOf(
  { step, samples, measuredMs, endedAt }: Pick<StageRound, 'step' | 'samples' | 'measuredMs' | 'endedAt'>,
  load: DoctorLoad,
): StageProfile {
  const latencies = samples.map((s) => s.latencyMs).sort((a, b) => a - b);
  const tail = tailOf(samples);
  const stats = step.serverStats;
  const interval = p99Interval(recordedLatencies({ samples, endedAt }));
  const answered = stats ? stats.requests + stats.cacheHits : 0;
  return {
    load,
    measuredS: round(measuredMs / 1000, 2),
    requests: step.requests,
    errors: step.errors.total,
    throughput: step.throughput,
    latencyMs: {
      p50: step.latencyMs.p50,
      p90: step.latencyMs.p90,
      p99: step.latencyMs.p99,
      max: latencies.length ? round(latencies[latencies.length - 1]!, 3) : step.latencyMs.max,
    },
    ...(interval ? { p99IntervalMs: interval } : {}),
    meanMs: meanStages(samples),
    meanIntervalMs: stageIntervals(samples),
    tailMs: meanStages(tail),
    tailRequests: tail.length,
    cacheHitShare: answered > 0 ? round(stats!.cacheHits / answered, 3) : 0,
    meanBatchSize: stats && stats.executions > 0 ? stats.meanBatchSize : null,
  };
}

/**
 * One profile of several rounds of the same server, taken as one measurement: latency percentiles over every
 * answer of every round (the generator's histogram), stage means and the tail over the pooled answers, requests and
 * errors summed, throughput and server statistics over all rounds. Alternated rounds of two servers, pooled per
 * server, compare them under the same drift of the machine's load.
 */
export function profileOfRounds(rounds: readonly StageRound[], load: DoctorLoad): StageProfile {
  if (rounds.length === 1) return profileOf(rounds[0]!, load);
  const histogram = new LatencyHistogram();
  const samples = rounds.flatMap((r) => r.samples);
  for (const s of samples) histogram.recordMs(s.latencyMs);
  let requests = 0;
  let executions = 0;
  let cacheHits = 0;
  let withStats = 0;
  for (const { step } of rounds) {
    if (!step.serverStats) continue;
    withStats++;
    requests += step.serverStats.requests;
    executions += step.serverStats.executions;
    cacheHits += step.serverStats.cacheHits;
  }
  const tail = tailOf(samples);
  const latency = summarizeLatency(histogram);
  const interval = p99Interval(rounds.flatMap((r) => recordedLatencies(r)).sort((a, b) => a - b));
  return {
    load,
    measuredS: round(rounds.reduce((ms, r) => ms + r.measuredMs, 0) / 1000, 2),
    requests: rounds.reduce((n, r) => n + r.step.requests, 0),
    errors: rounds.reduce((n, r) => n + r.step.errors.total, 0),
    throughput: round(rounds.reduce((sum, r) => sum + r.step.throughput, 0) / rounds.length),
    latencyMs: { p50: latency.p50, p90: latency.p90, p99: latency.p99, max: latency.max },
    ...(interval ? { p99IntervalMs: interval } : {}),
    meanMs: meanStages(samples),
    meanIntervalMs: stageIntervals(samples),
    tailMs: meanStages(tail),
    tailRequests: tail.length,
    cacheHitShare: requests + cacheHits > 0 ? round(cacheHits / (requests + cacheHits), 3) : 0,
    meanBatchSize: withStats > 0 && executions > 0 ? round(requests / executions, 3) : null,
  };
}
