import type { WindowSummary } from './measurement-window.ts';

/** When a step's measurement counts as settled (perf_analyzer's rule). */
export interface StabilityRule {
  /** Allowed spread, in percent, of throughput and of p99 around their mean over the last `windows`. */
  tolerancePct: number;
  windows: number;
  /** Windows measured at most before giving up and reporting the step as unstable. */
  maxTrials: number;
}

export const DEFAULT_STABILITY: StabilityRule = { tolerancePct: 10, windows: 3, maxTrials: 10 };

/** True when each of the last `rule.windows` windows is within ±tolerance of their mean, for throughput and for p99. */
export function isStable(windows: readonly WindowSummary[], rule: StabilityRule): boolean {
  if (windows.length < rule.windows) return false;
  const last = windows.slice(-rule.windows);
  return (
    withinTolerance(
      last.map((w) => w.throughput),
      rule.tolerancePct,
    ) &&
    withinTolerance(
      last.map((w) => w.latencyMs.p99),
      rule.tolerancePct,
    )
  );
}

function withinTolerance(values: readonly number[], tolerancePct: number): boolean {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (mean === 0) return values.every((v) => v === 0);
  return values.every((v) => Math.abs(v - mean) <= (mean * tolerancePct) / 100);
}
