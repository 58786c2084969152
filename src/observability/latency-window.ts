/** The last `capacity` latency samples (milliseconds) and their percentiles. */
export class LatencyWindow {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(capacity: number) {
    this.samples = new Float64Array(capacity);
  }

  get count(): number {
    return this.filled;
  }

  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.filled < this.samples.length) this.filled++;
  }

  clear(): void {
    this.next = 0;
    this.filled = 0;
  }

  /** A copy of the samples held, oldest order not preserved. */
  values(): Float64Array {
    return this.samples.slice(0, this.filled);
  }

  /** Percentiles (0..1) of the samples held, in milliseconds; NaN when empty. */
  percentiles(qs: readonly number[]): number[] {
    return percentilesOf(this.values(), qs);
  }

  /** {count, p50, p90, p99} in microseconds (rounded to 0.1 µs), for /stats. */
  summaryUs(): { count: number; p50: number | null; p90: number | null; p99: number | null } {
    const [p50, p90, p99] = this.percentiles([0.5, 0.9, 0.99]).map((ms) =>
      Number.isNaN(ms) ? null : Math.round(ms * 10_000) / 10,
    );
    return { count: this.filled, p50: p50 ?? null, p90: p90 ?? null, p99: p99 ?? null };
  }
}

/** Nearest-rank percentiles (0..1) of `samples` (sorted in place); NaN when empty. */
export function percentilesOf(samples: Float64Array, qs: readonly number[]): number[] {
  if (samples.length === 0) return qs.map(() => NaN);
  samples.sort();
  return qs.map((q) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(q * samples.length) - 1))]!);
}
