/** How each entity lookup ended: found, unknown entity, store too slow, store failed or unreachable. */
export const FEATURE_OUTCOMES = ['hit', 'miss', 'timeout', 'error'] as const;
export type FeatureOutcome = (typeof FEATURE_OUTCOMES)[number];

/** Lookup counters for one model version, counted per entity key. */
export class FeatureStats {
  readonly outcomes: Record<FeatureOutcome, number> = { hit: 0, miss: 0, timeout: 0, error: 0 };
  /** Rows answered with default features because the store was slow or down. */
  degraded = 0;

  constructor(
    readonly model: string,
    readonly version: number,
  ) {}

  count(outcome: FeatureOutcome, n = 1): void {
    this.outcomes[outcome] += n;
  }

  snapshot(): { model: string; version: number; outcomes: Record<FeatureOutcome, number>; degraded: number } {
    return { model: this.model, version: this.version, outcomes: { ...this.outcomes }, degraded: this.degraded };
  }
}
