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
      this.stageSums.set(name, (this.stageSums.get(name) ?? 0) + Number(entry.slice(dur + 4)));
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
} {
  const latency = new LatencyHistogram();
  const errorsByStatus: Record<string, number> = {};
  const stageSums = new Map<string, number>();
  let successes = 0;
  let stageSamples = 0;
  let durationMs = 0;
  for (const window of windows) {
    latency.merge(window.latency);
    successes += window.successes;
    durationMs += window.endedAt - window.startedAt;
    for (const [status, n] of window.errorsByStatus) errorsByStatus[status] = (errorsByStatus[status] ?? 0) + n;
    for (const [stage, sum] of window.stageSums) stageSums.set(stage, (stageSums.get(stage) ?? 0) + sum);
    stageSamples += window.stageSamples;
  }
  const stages: StageAverages = {};
  if (stageSamples > 0) for (const [stage, sum] of stageSums) stages[stage] = round(sum / stageSamples, 4);
  return { durationMs, successes, errorsByStatus, latency, stages };
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
