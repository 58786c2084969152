import type { LatencyComparison } from './latency.ts';
import type { AccuracyComparison, RegressionComparison } from './output-comparison.ts';

/**
 * The accuracy guard: an optimized model is written only when it keeps the original's accuracy within
 * `maxDrop` (percentage points for classifiers, per cent of the original's MAE for regression), is no
 * larger, and is no slower at any batch size timed — unless forced. The verdict names every failed check.
 */
export interface GuardVerdict {
  /** The allowance: accuracy points (classification) or per cent more MAE (regression). */
  maxDrop: number;
  passed: boolean;
  /** One sentence per failed check. */
  reasons: string[];
  /** What could not be checked (no labelled eval data, no timing). */
  unchecked: string[];
  /** Written although it failed, because --force was given. */
  forced: boolean;
  written: boolean;
}

/** A model must be this much slower (after/before) before it counts as slower: timing noise on a busy machine. */
export const SLOWER_TOLERANCE = 1.05;

export const DEFAULT_MAX_DROP = 1.0;

export interface GuardInput {
  accuracy?: AccuracyComparison;
  regression?: RegressionComparison;
  size: { beforeBytes: number; afterBytes: number };
  latency: LatencyComparison[];
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** What the checks found; `written` and `forced` are filled in by the caller that decides to write. */
export function judgeOptimization(
  input: GuardInput,
  maxDrop: number = DEFAULT_MAX_DROP,
): Omit<GuardVerdict, 'written' | 'forced'> {
  const reasons: string[] = [];
  const unchecked: string[] = [];
  if (input.accuracy) {
    const drop = (input.accuracy.before - input.accuracy.after) * 100;
    if (drop > maxDrop + 1e-9)
      reasons.push(
        `accuracy drops ${drop.toFixed(2)} pt (${pct(input.accuracy.before)} → ${pct(input.accuracy.after)}), more than --max-drop ${maxDrop} pt`,
      );
  } else if (input.regression) {
    const { before, after } = input.regression;
    const rise = before.mae > 0 ? (after.mae / before.mae - 1) * 100 : after.mae > 0 ? Infinity : 0;
    if (rise > maxDrop + 1e-9)
      reasons.push(
        `MAE rises ${Number.isFinite(rise) ? rise.toFixed(2) : '∞'}% (${before.mae.toPrecision(4)} → ${after.mae.toPrecision(4)}), more than --max-drop ${maxDrop}%`,
      );
  } else {
    unchecked.push('accuracy (no evaluation data with labels: give --eval DATA and --label COLUMN)');
  }
  const { beforeBytes, afterBytes } = input.size;
  if (afterBytes > beforeBytes)
    reasons.push(
      `larger: ${afterBytes} bytes against ${beforeBytes} (${(afterBytes / beforeBytes).toFixed(2)}× the size)`,
    );
  if (input.latency.length === 0) unchecked.push('latency (not timed)');
  for (const l of input.latency) {
    if (l.afterMs > l.beforeMs * SLOWER_TOLERANCE) {
      reasons.push(
        `slower at batch ${l.batchSize}: ${l.beforeMs.toFixed(3)} ms → ${l.afterMs.toFixed(3)} ms (${(l.afterMs / l.beforeMs).toFixed(2)}× slower)`,
      );
    }
  }
  return { maxDrop, passed: reasons.length === 0, reasons, unchecked };
}

/** "1.83× faster" or "1.20× slower": a ratio always read in the direction it goes. */
export function speedWords(beforeMs: number, afterMs: number): string {
  return afterMs <= beforeMs
    ? `${(beforeMs / afterMs).toFixed(2)}× faster`
    : `${(afterMs / beforeMs).toFixed(2)}× slower`;
}

/** "0.26× the size" or "1.35× larger". */
export function sizeWords(beforeBytes: number, afterBytes: number): string {
  return afterBytes <= beforeBytes
    ? `${(afterBytes / beforeBytes).toFixed(3)}× the size`
    : `${(afterBytes / beforeBytes).toFixed(2)}× larger`;
}

/** The verdict as report lines. */
export function formatVerdict(verdict: GuardVerdict): string[] {
  const lines: string[] = [];
  if (verdict.passed) lines.push(`guard           passed (max drop ${verdict.maxDrop}, no larger, no slower)`);
  else lines.push(`guard           FAILED: ${verdict.reasons.join('; ')}`);
  if (verdict.unchecked.length) lines.push(`                not checked: ${verdict.unchecked.join('; ')}`);
  if (!verdict.passed)
    lines.push(
      verdict.written
        ? '                written anyway (--force)'
        : '                not written (pass --force to write it anyway)',
    );
  return lines;
}
