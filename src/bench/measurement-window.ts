import { LatencyHistogram } from './latency-histogram.ts';
import type { RequestOutcome } from './load-target.ts';

export interface LatencySummary {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** What the responses' Server-Timing headers said, averaged per stage (ms). */
export type StageAverages = Record<string, number>;

/** The 95% interval of a mean (ms): where the mean of another measurement of the same kind falls from sampling alone. */
export interface MeanInterval {
  low: number;
  high: number;
}

/**
 * The 95% interval of a mean from `n` values given their sum and sum of squares: mean ± 1.96·s/√n, s the sample
 * standard deviation. Undefined under 2 values (no spread to read). Rounded as the stage means are (4 digits).
 */
export function meanInterval(sum: number, sumOfSquares: number, n: number): MeanInterval | undefined {
  if (n < 2) return undefined;
  const mean = sum / n;
  const variance = Math.max(0, (sumOfSquares - n * mean * mean) / (n - 1));
  const half = 1.96 * Math.sqrt(variance / n);
  return { low: round(mean - half, 4), high: round(mean + half, 4) };
}

/** One measurement window, summarized. */
export interface WindowSummary {
  durationMs: number;
  requests: number;
  /** Successful responses per second. */
  throughput: number;
  latencyMs: LatencySummary;
  errors: number;
}

/** Everything recorded during one measurement window; the generator swaps in a fresh one at each boundary. */
export class MeasurementWindow {
  readonly latency = new LatencyHistogram();
  successes = 0;
  readonly errorsByStatus = new Map<string, number>();
  readonly stageSums = new Map<string, number>();
  readonly stageSquares = new Map<string, number>();
  stageSamples = 0;
  endedAt = 0;

  constructor(readonly startedAt: number) {}

  record(latencyMs: number, outcome: RequestOutcome): void {
    if (!outcome.ok) {
      this.errorsByStatus.set(outcome.status, (this.errorsByStatus.get(outcome.status) ?? 0) + 1);
      return;
    }
    this.successes++;
    this.latency.recordMs(latencyMs);
    if (outcome.serverTiming) this.addServerTiming(outcome.serverTiming);
  }

  private addServerTiming(header: string): void {
    this.stageSamples++;
    for (const entry of header.split(',')) {
      const semicolon = entry.indexOf(';');
      const dur = entry.indexOf('dur=');
      if (semicolon < 0 || dur < 0) continue;
      const name = entry.slice(0, semicolon).trim();
      const ms = Number(entry.slice(dur + 4));
      this.stageSums.set(name, (this.stageSums.get(name) ?? 0) + ms);
      this.stageSquares.set(name, (this.stageSquares.get(name) ?? 0) + ms * ms);
    }
  }

  get errors(): number {
    let n = 0;
    for (const count of this.errorsByStatus.values()) n += count;
    return n;
  }

  summarize(): WindowSummary {
    const durationMs = this.endedAt - this.startedAt;
    return {
      durationMs: round(durationMs),
      requests: this.successes + this.errors,
      throughput: round(durationMs > 0 ? (this.successes * 1000) / durationMs : 0),
      latencyMs: summarizeLatency(this.latency),
      errors: this.errors,
    };
  }
}

export function summarizeLatency(histogram: LatencyHistogram): LatencySummary {
  return {
    p50: round(histogram.percentileMs(50)),
    p90: round(histogram.percentileMs(90)),
    p95: round(histogram.percentileMs(95)),
    p99: round(histogram.percentileMs(99)),
    max: round(histogram.maxMs),
    mean: round(histogram.meanMs),
  };
}

/** Several consecutive windows taken as one measurement. */
export function combineWindows(windows: readonly MeasurementWindow[]): {
  durationMs: number;
  successes: number;
  errorsByStatus: Record<string, number>;
  latency: LatencyHistogram;
  stages: StageAverages;
  /** Each stage mean's 95% interval from the answers' spread (meanInterval). */
  stageIntervals: Record<string, MeanInterval>;
} {
  const latency = new LatencyHistogram();
  const errorsByStatus: Record<string, number> = {};
  const stageSums = new Map<string, number>();
  const stageSquares = new Map<string, number>();
  let successes = 0;
  let stageSamples = 0;
  let durationMs = 0;
  for (const window of windows) {
    latency.merge(window.latency);
    successes += window.successes;
    durationMs += window.endedAt - window.startedAt;
    for (const [status, n] of window.errorsByStatus) errorsByStatus[status] = (errorsByStatus[status] ?? 0) + n;
    for (const [stage, sum] of window.stageSums) stageSums.set(stage, (stageSums.get(stage) ?? 0) + sum);
    for (const [stage, sum] of window.stageSquares) stageSquares.set(stage, (stageSquares.get(stage) ?? 0) + sum);
    stageSamples += window.stageSamples;
  }
  const stages: StageAverages = {};
  const stageIntervals: Record<string, MeanInterval> = {};
  if (stageSamples > 0)
    for (const [stage, sum] of stageSums) {
      stages[stage] = round(sum / stageSamples, 4);
      const interval = meanInterval(sum, stageSquares.get(stage) ?? 0, stageSamples);
      if (interval) stageIntervals[stage] = interval;
    }
  return { durationMs, successes, errorsByStatus, latency, stages, stageIntervals };
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The window a running load records into, closed and replaced by a fresh one at each boundary. */
export class WindowRotation {
  private current: MeasurementWindow;

  constructor(startedAt: number) {
    this.current = new MeasurementWindow(startedAt);
  }

  record(latencyMs: number, outcome: RequestOutcome): void {
    this.current.record(latencyMs, outcome);
  }

  /** Closes the current window now and starts recording into a new one; returns the closed window. */
  next(): MeasurementWindow {
    const closed = this.current;
    const now = performance.now();
    closed.endedAt = now;
    this.current = new MeasurementWindow(now);
    return closed;
  }
}
