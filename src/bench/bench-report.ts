import type { ArrivalDistribution } from './arrival-schedule.ts';
import type { LatencySummary, MeanInterval, StageAverages, WindowSummary } from './measurement-window.ts';
import type { BenchProtocol } from './request-data.ts';
import type { ServerBreakdown } from './server-stats.ts';
import type { StabilityRule } from './stability-rule.ts';

export type LoadMode = 'concurrency' | 'rate';

/** One point of a sweep: a concurrency level (closed loop) or an offered rate (open loop). */
export interface StepResult {
  /** Connections (closed loop) or requests/s offered (open loop). */
  load: number;
  /** True when the stability rule was met; false when maxTrials windows ran without meeting it. */
  stable: boolean;
  stability: string;
  /** Measured windows, in order; the result below combines the last `rule.windows` of them. */
  windows: WindowSummary[];
  /** Successful responses per second. */
  throughput: number;
  requests: number;
  latencyMs: LatencySummary;
  errors: { total: number; byStatus: Record<string, number> };
  /** Mean per-stage milliseconds from the responses' Server-Timing headers. */
  serverTiming: StageAverages;
  /**
   * Each stage mean's 95% interval from the spread of the answers' Server-Timing figures (mean ± 1.96·sd/√n): two
   * measurements whose means differ by more than this differ by more than sampling.
   */
  serverTimingInterval?: Record<string, MeanInterval>;
  /** The server's statistics endpoint over the same windows; null when it has none. */
  serverStats: ServerBreakdown | null;
  /** Open loop only: requests scheduled and how many had to wait for a free connection. */
  openLoop?: { scheduled: number; delayed: number; connections: number };
}

export interface BenchReport {
  kind: 'caliper-bench';
  version: 1;
  startedAt: string;
  target: { url: string; model: string; protocol: BenchProtocol; request: string; data: string; requests: number };
  mode: LoadMode;
  distribution?: ArrivalDistribution;
  windowMs: number;
  warmupMs: number;
  stabilityRule: StabilityRule;
  steps: StepResult[];
  /** Why the figures may not measure the model (cache answers, almost no executions); empty when none. */
  warnings: string[];
}
