// One timing loop for the quantization benches: several ONNX Runtime sessions of the same model family timed on
// the same feeds, round by round, the order reversed every other round, so load from other processes on a shared
// machine hits every variant alike. Ratios are taken within a round (same moment) and summarised by their median.
import type { OrtFeeds, OrtSession } from '../src/optimize/onnx/ort-session.ts';

/** Per variant, milliseconds per run, one sample per round. */
export type RoundTimes = Record<string, number[]>;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Times each session `runs` times per round for `rounds` rounds (after `warmup` runs each), alternating the order
 * of the variants between rounds. Returns milliseconds per run per round, keyed like `sessions`.
 */
export async function timeInterleaved(
  sessions: Readonly<Record<string, OrtSession>>,
  feeds: OrtFeeds,
  options: { rounds: number; runs: number; warmup?: number },
): Promise<RoundTimes> {
  const names = Object.keys(sessions);
  for (const name of names) for (let i = 0; i < (options.warmup ?? 5); i++) await sessions[name]!.run(feeds);
  const times: RoundTimes = Object.fromEntries(names.map((n) => [n, [] as number[]]));
  for (let round = 0; round < options.rounds; round++) {
    for (const name of round % 2 ? [...names].reverse() : names) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < options.runs; i++) await sessions[name]!.run(feeds);
      times[name]!.push(Number(process.hrtime.bigint() - start) / 1e6 / options.runs);
    }
  }
  return times;
}

/** Speed-up of `variant` over `base`: the median and spread of the per-round ratios base / variant. */
export function speedupPerRound(
  times: RoundTimes,
  base: string,
  variant: string,
): { median: number; min: number; max: number } {
  const ratios = times[variant]!.map((ms, i) => times[base]![i]! / ms);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}
