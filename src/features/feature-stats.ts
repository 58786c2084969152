/** How each entity lookup ended: found, unknown entity, store too slow, store failed or unreachable. */
export const FEATURE_OUTCOMES = ['hit', 'miss', 'timeout', 'error'] as const;
export type FeatureOutcome = (typeof FEATURE_OUTCOMES)[number];

/** Lookup counters for one model version, counted per entity key. */
export class FeatureStats {
  readonly outcomes: Record<FeatureOutcome, number> = { hit: 0, miss: 0, timeout: 0, error: 0 };
  /** Rows answered with default features because the store was slow or down. */
  degraded = 0;

  constructor(readonly model: string, readonly version: number) {}

  count(outcome: FeatureOutcome, n = 1): void {
    this.outcomes[outcome] += n;
  }

  snapshot(): { model: string; version: number; outcomes: Record<FeatureOutcome, number>; degraded: number } {
    return { model: this.model, version: this.version, outcomes: { ...this.outcomes }, degraded: this.degraded };
  }
}

/**
 * Every live version's counters, for the metrics exporter. Versions register at load and leave at
 * unload; their totals are folded into `retired` so counters never go backwards.
 */
class FeatureStatsRegistry {
  private readonly live = new Set<FeatureStats>();
  private readonly retired = new Map<string, FeatureStats>();

  add(stats: FeatureStats): void {
    this.live.add(stats);
  }

  remove(stats: FeatureStats): void {
    if (!this.live.delete(stats)) return;
    const id = `${stats.model}\u0000${stats.version}`;
    const total = this.retired.get(id) ?? new FeatureStats(stats.model, stats.version);
    for (const outcome of FEATURE_OUTCOMES) total.count(outcome, stats.outcomes[outcome]);
    total.degraded += stats.degraded;
    this.retired.set(id, total);
  }

  /** Totals per model version (live and retired instances of the same version summed). */
  totals(): ReturnType<FeatureStats['snapshot']>[] {
    const byId = new Map<string, FeatureStats>();
    for (const stats of [...this.retired.values(), ...this.live]) {
      const id = `${stats.model}\u0000${stats.version}`;
      const total = byId.get(id) ?? new FeatureStats(stats.model, stats.version);
      for (const outcome of FEATURE_OUTCOMES) total.count(outcome, stats.outcomes[outcome]);
      total.degraded += stats.degraded;
      byId.set(id, total);
    }
    return [...byId.values()].map((s) => s.snapshot());
  }
}

export const featureStatsRegistry = new FeatureStatsRegistry();
