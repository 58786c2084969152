/**
 * Tunes a batcher's queue delay at run time (`max_queue_delay_us: auto`): the longest delay that keeps the
 * measured p99 of queue + inference time under the SLA budget, so batches grow only as far as the load
 * and the budget allow. Additive increase while there is room and batches leave half empty, multiplicative
 * decrease as soon as the p99 nears the budget.
 */

export interface AdaptiveDelayOptions {
  /** The latency budget (sla.p99_ms) the batcher's share of a request must stay under. */
  p99BudgetMs: number;
  /** Largest delay the controller may choose, microseconds. */
  maxDelayUs?: number;
  /** Requests per decision window. */
  windowSize?: number;
  initialDelayUs?: number;
}

export interface DelayDecision {
  delayUs: number;
  p99Ms: number;
  meanBatchFill: number;
}

/** Fraction of the budget the p99 may reach before the delay is cut. */
const HIGH_WATER = 0.8;
/** Below this fraction of the budget the delay may grow. */
const LOW_WATER = 0.5;

export class AdaptiveDelayController {
  private delay: number;
  private readonly budget: number;
  private readonly maxDelay: number;
  private readonly window: Float64Array;
  private filled = 0;
  private fillSum = 0;
  private fillCount = 0;
  private readonly step: number;
  last: DelayDecision | undefined;

  constructor(options: AdaptiveDelayOptions) {
    this.budget = options.p99BudgetMs;
    // A delay above a quarter of the budget can only be paid for by requests that then miss it.
    this.maxDelay = options.maxDelayUs ?? Math.max(50, (options.p99BudgetMs * 1000) / 4);
    this.delay = Math.min(options.initialDelayUs ?? 100, this.maxDelay);
    this.window = new Float64Array(options.windowSize ?? 256);
    this.step = Math.max(10, this.maxDelay / 20);
  }

  get delayUs(): number {
    return this.delay;
  }

  /** One request's time in the batcher (queue + inference), in milliseconds. */
  observeLatency(ms: number): void {
    this.window[this.filled++] = ms;
    if (this.filled === this.window.length) this.decide();
  }

  /** How full a dispatched batch was (rows / max batch size), and whether it left because the delay ran out. */
  observeBatch(fill: number): void {
    this.fillSum += fill;
    this.fillCount++;
  }

  private decide(): void {
    const sorted = this.window.slice().sort();
    const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
    const meanFill = this.fillCount === 0 ? 1 : this.fillSum / this.fillCount;
    if (p99 > this.budget * HIGH_WATER) {
      this.delay = this.delay / 2;
      if (this.delay < 1) this.delay = 0;
    } else if (p99 < this.budget * LOW_WATER && meanFill < 0.9) {
      this.delay = Math.min(this.maxDelay, this.delay + this.step);
    }
    this.last = { delayUs: this.delay, p99Ms: p99, meanBatchFill: meanFill };
    this.filled = 0;
    this.fillSum = 0;
    this.fillCount = 0;
  }
}
