/**
 * The recent arrival rate a batcher sees, as the mean gap between arrivals: an exponentially weighted mean over the
 * gaps (each new gap weighs 1/8), so it follows a changing rate within a few dozen arrivals. The batcher asks it how
 * many arrivals to expect while a partly filled batch would wait for its delay: fewer than one, and waiting would
 * most likely add nothing but the wait (and a second wake-up of the process on the delay's timer).
 */

/** Weight of the newest gap in the mean. */
const NEWEST_GAP_WEIGHT = 1 / 8;
/** Gaps seen before the mean is trusted (a mean of one or two gaps is one or two samples of a random gap). */
const GAPS_TO_KNOW = 8;

export class ArrivalRate {
  /** When the last arrival came, ms (performance.now()); NaN before the first. */
  private lastAt = Number.NaN;
  /** Mean gap between arrivals, ms; NaN until a second arrival gives a first gap. */
  private meanGap = Number.NaN;
  /** Gaps seen so far. */
  private gaps = 0;

  /**
   * Records an arrival at `nowMs` (performance.now() milliseconds). A gap longer than `longestGapMs` counts as that
   * long, so one idle spell cannot hide a rate that picks up again for more than a few arrivals.
   */
  arrive(nowMs: number, longestGapMs: number): void {
    if (!Number.isNaN(this.lastAt)) {
      const gap = Math.min(nowMs - this.lastAt, longestGapMs);
      this.meanGap = this.gaps === 0 ? gap : this.meanGap + (gap - this.meanGap) * NEWEST_GAP_WEIGHT;
      this.gaps++;
    }
    this.lastAt = nowMs;
  }

  /** Mean gap between recent arrivals, ms; NaN until two arrivals have been seen. */
  get meanGapMs(): number {
    return this.meanGap;
  }

  /**
   * Arrivals to expect within the next `ms` (> 0) milliseconds at the recent rate: `ms` ÷ the mean gap. Infinity
   * while the rate is not known yet (fewer than 8 gaps seen) or the arrivals came all at once (a mean gap of 0): no
   * evidence that waiting is useless.
   */
  expectedWithin(ms: number): number {
    return this.gaps < GAPS_TO_KNOW ? Number.POSITIVE_INFINITY : ms / this.meanGap;
  }
}
