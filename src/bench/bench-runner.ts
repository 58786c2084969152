import type { ArrivalDistribution } from './arrival-schedule.ts';
import type { BenchReport, LoadMode, StepResult } from './bench-report.ts';
import { startClosedLoop, startOpenLoop, type RunningLoad } from './load-generator.ts';
import type { LoadTarget } from './load-target.ts';
import {
  combineWindows,
  round,
  summarizeLatency,
  type MeasurementWindow,
  type WindowSummary,
} from './measurement-window.ts';
import type { BenchProtocol } from './request-data.ts';
import { diffServerStats, fetchServerStats, measurementWarnings, type ServerStatsSnapshot } from './server-stats.ts';
import { DEFAULT_STABILITY, isStable, type StabilityRule } from './stability-rule.ts';

export type LoadPlan =
  | { mode: 'concurrency'; levels: number[] }
  | { mode: 'rate'; rates: number[]; distribution: ArrivalDistribution; maxConnections?: number };

export interface BenchOptions {
  target: LoadTarget;
  /** Where load goes (shown in the report). */
  url: string;
  /** HTTP base URL of the server's statistics endpoint, when `url` is not one (gRPC load). */
  statsUrl?: string;
  model: string;
  protocol: BenchProtocol;
  data: { source: string; requests: number };
  plan: LoadPlan;
  windowMs?: number;
  warmupMs?: number;
  stability?: Partial<StabilityRule>;
  /** Read per-stage statistics from GET /v2/models/{model}/stats (default true). */
  serverStats?: boolean;
  onStep?: (step: StepResult) => void;
  onWindow?: (load: number, window: WindowSummary) => void;
  /** Ends the sweep early, e.g. once p99 is past a budget (later steps only load the server more). */
  stopAfter?: (step: StepResult) => boolean;
}

export const DEFAULT_WINDOW_MS = 2000;
export const DEFAULT_MAX_CONNECTIONS = 512;

/** Expands "START:END:STEP" into the list of rates it names. */
export function expandRateRange(text: string): number[] {
  const parts = text.split(':').map(Number);
  const [start, end, step] = parts;
  if (parts.length !== 3 || parts.some((n) => !Number.isFinite(n)) || start! <= 0 || end! < start! || step! <= 0) {
    throw new Error(`--rate: expected START:END:STEP with 0 < START <= END and STEP > 0 (requests/s), got "${text}"`);
  }
  const rates: number[] = [];
  for (let r = start!; r <= end! + 1e-9; r += step!) rates.push(round(r, 3));
  if (rates.length > 1000) throw new Error(`--rate: "${text}" names ${rates.length} steps (at most 1000)`);
  return rates;
}

/**
 * Starts one step of a plan's load on a target: `load` is the step's concurrency (closed loop, that many connections
 * each sending as soon as its answer comes) or its rate (open loop, requests/s on the plan's arrival distribution over
 * at most the plan's `maxConnections`, default DEFAULT_MAX_CONNECTIONS). The caller stops what it returns.
 */
export function startLoad(target: LoadTarget, plan: LoadPlan, load: number): RunningLoad {
  return plan.mode === 'concurrency'
    ? startClosedLoop(target, load)
    : startOpenLoop(target, load, plan.distribution, plan.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
}

/** Runs every step of the plan in turn and returns the report. */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const rule: StabilityRule = { ...DEFAULT_STABILITY, ...options.stability };
  const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
  const warmupMs = options.warmupMs ?? Math.min(windowMs, 1000);
  const mode: LoadMode = options.plan.mode;
  const report: BenchReport = {
    kind: 'caliper-bench',
    version: 1,
    startedAt: new Date().toISOString(),
    target: {
      url: options.url,
      model: options.model,
      protocol: options.protocol,
      request: options.target.description,
      data: options.data.source,
      requests: options.data.requests,
    },
    mode,
    windowMs,
    warmupMs,
    stabilityRule: rule,
    steps: [],
    warnings: [],
  };
  if (options.plan.mode === 'rate') report.distribution = options.plan.distribution;
  const loads = options.plan.mode === 'concurrency' ? options.plan.levels : options.plan.rates;
  for (const load of loads) {
    const plan = options.plan;
    const step = await runStep(load, () => startLoad(options.target, plan, load), {
      ...options,
      rule,
      windowMs,
      warmupMs,
    });
    report.steps.push(step);
    report.warnings.push(...measurementWarnings(step));
    options.onStep?.(step);
    if (options.stopAfter?.(step)) break;
  }
  return report;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function runStep(
  load: number,
  start: () => RunningLoad,
  options: BenchOptions & { rule: StabilityRule; windowMs: number; warmupMs: number },
): Promise<StepResult> {
  const { rule, windowMs } = options;
  const readStats = options.serverStats !== false;
  const running = start();
  await sleep(options.warmupMs);
  running.nextWindow();
  const windows: MeasurementWindow[] = [];
  const summaries: WindowSummary[] = [];
  // A statistics snapshot at every window boundary, so the breakdown covers exactly the windows reported.
  const statsBase = options.statsUrl ?? options.url;
  const snapshots: Promise<ServerStatsSnapshot | undefined>[] = [
    readStats ? fetchServerStats(statsBase, options.model) : Promise.resolve(undefined),
  ];
  let stable = false;
  while (windows.length < rule.maxTrials) {
    await sleep(windowMs);
    const window = running.nextWindow();
    if (readStats) snapshots.push(fetchServerStats(statsBase, options.model));
    windows.push(window);
    const summary = window.summarize();
    summaries.push(summary);
    options.onWindow?.(load, summary);
    if (isStable(summaries, rule)) {
      stable = true;
      break;
    }
  }
  const counters = await running.stop();
  const used = windows.slice(-rule.windows);
  const combined = combineWindows(used);
  const resolved = await Promise.all(snapshots);
  const before = resolved[resolved.length - 1 - used.length];
  const after = resolved[resolved.length - 1];
  const step: StepResult = {
    load,
    stable,
    stability: stable
      ? `stable: throughput and p99 within ±${rule.tolerancePct}% over the last ${rule.windows} of ${windows.length} windows`
      : `not stable: ${rule.maxTrials} windows (the maximum) without throughput and p99 within ±${rule.tolerancePct}% over ${rule.windows} windows; figures are from the last ${used.length}`,
    windows: summaries,
    throughput: round(combined.durationMs > 0 ? (combined.successes * 1000) / combined.durationMs : 0),
    requests: combined.successes + Object.values(combined.errorsByStatus).reduce((a, b) => a + b, 0),
    latencyMs: summarizeLatency(combined.latency),
    errors: {
      total: Object.values(combined.errorsByStatus).reduce((a, b) => a + b, 0),
      byStatus: combined.errorsByStatus,
    },
    serverTiming: combined.stages,
    serverTimingInterval: combined.stageIntervals,
    serverStats: before && after ? diffServerStats(before, after) : null,
  };
  if (counters) step.openLoop = counters;
  return step;
}
