import type { OrtFeeds, OrtSession } from '../onnx/ort-session.ts';

export interface LatencyComparison {
  batchSize: number;
  /** Median milliseconds per run. */
  beforeMs: number;
  afterMs: number;
  /** beforeMs / afterMs. */
  speedup: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Median run time of two sessions on the same feeds, interleaved round by round so that load from other
 * processes hits both alike (the ratio is the figure to trust on a shared machine).
 */
export async function compareLatency(
  before: OrtSession,
  after: OrtSession,
  feeds: OrtFeeds,
  batchSize: number,
  options: { rounds?: number; runsPerRound?: number; warmup?: number } = {},
): Promise<LatencyComparison> {
  const rounds = options.rounds ?? 15;
  const runs = options.runsPerRound ?? 5;
  for (let i = 0; i < (options.warmup ?? 3); i++) {
    await before.run(feeds);
    await after.run(feeds);
  }
  const samples = { before: [] as number[], after: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
    for (const which of order) {
      const session = which === 'before' ? before : after;
      const start = process.hrtime.bigint();
      for (let i = 0; i < runs; i++) await session.run(feeds);
      samples[which].push(Number(process.hrtime.bigint() - start) / 1e6 / runs);
    }
  }
  const beforeMs = median(samples.before);
  const afterMs = median(samples.after);
  return { batchSize, beforeMs, afterMs, speedup: beforeMs / afterMs };
}
