/**
 * An HDR-style latency histogram: values in microseconds, bucketed log-linearly so that every recorded
 * value keeps 3 significant digits (relative error < 0.1%) from 1 µs up to about an hour, in fixed memory.
 * Recording is a few integer operations, so the load generator can record every response.
 */

const SUB_BUCKET_BITS = 11;
const SUB_BUCKET_COUNT = 1 << SUB_BUCKET_BITS; // 2048: values below this are exact
const HALF_SUB_BUCKET = SUB_BUCKET_COUNT >> 1;
/** Magnitudes covered above the exact range: 2048 µs · 2^22 ≈ 2.4 hours. */
const BUCKET_COUNT = 23;

export class LatencyHistogram {
  private readonly counts = new Float64Array(SUB_BUCKET_COUNT + BUCKET_COUNT * HALF_SUB_BUCKET);
  count = 0;
  private sumUs = 0;
  private maxUs = 0;
  private minUs = Number.POSITIVE_INFINITY;

  /** Records one latency, in milliseconds. */
  recordMs(ms: number): void {
    this.recordUs(ms * 1000);
  }

  recordUs(us: number): void {
    const value = us < 0 ? 0 : Math.round(us);
    this.counts[indexOf(value)]! += 1;
    this.count++;
    this.sumUs += value;
    if (value > this.maxUs) this.maxUs = value;
    if (value < this.minUs) this.minUs = value;
  }

  /** Adds every value of `other` to this histogram. */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sumUs += other.sumUs;
    if (other.maxUs > this.maxUs) this.maxUs = other.maxUs;
    if (other.minUs < this.minUs) this.minUs = other.minUs;
  }

  /** The latency (ms) below or at which `percentile` % of the values fall; 0 when empty. */
  percentileMs(percentile: number): number {
    if (this.count === 0) return 0;
    if (percentile >= 100) return this.maxUs / 1000;
    const rank = Math.max(1, Math.ceil((percentile / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(highestEquivalent(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  get maxMs(): number {
    return this.maxUs / 1000;
  }

  get minMs(): number {
    return this.count === 0 ? 0 : this.minUs / 1000;
  }

  get meanMs(): number {
    return this.count === 0 ? 0 : this.sumUs / this.count / 1000;
  }
}

function indexOf(value: number): number {
  if (value < SUB_BUCKET_COUNT) return value;
  // Bucket b holds [2048·2^(b-1), 2048·2^b) in steps of 2^b.
  const magnitude = Math.min(BUCKET_COUNT, 32 - Math.clz32(Math.min(value, 2 ** 31 - 1)) - SUB_BUCKET_BITS);
  const sub = Math.min(SUB_BUCKET_COUNT - 1, Math.floor(value / 2 ** magnitude));
  return SUB_BUCKET_COUNT + (magnitude - 1) * HALF_SUB_BUCKET + (sub - HALF_SUB_BUCKET);
}

/** The largest value that maps to bucket index `index`. */
function highestEquivalent(index: number): number {
  if (index < SUB_BUCKET_COUNT) return index;
  const offset = index - SUB_BUCKET_COUNT;
  const magnitude = Math.floor(offset / HALF_SUB_BUCKET) + 1;
  const sub = (offset % HALF_SUB_BUCKET) + HALF_SUB_BUCKET;
  return (sub + 1) * 2 ** magnitude - 1;
}
