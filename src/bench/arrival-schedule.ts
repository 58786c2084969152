export type ArrivalDistribution = 'constant' | 'poisson';
export const ARRIVAL_DISTRIBUTIONS: readonly ArrivalDistribution[] = ['constant', 'poisson'];

/**
 * Send times of an open-loop run, in ms after its start: evenly spaced at `rate` requests/s, or with
 * exponentially distributed gaps (a Poisson process of the same mean rate). A seeded generator keeps
 * runs repeatable.
 */
export class ArrivalSchedule {
  private nextAt = 0;
  private state: number;

  constructor(
    readonly rate: number,
    readonly distribution: ArrivalDistribution,
    seed = 0x9e3779b9,
  ) {
    this.state = seed >>> 0 || 1;
  }

  /** The scheduled time of the next request, then advances. */
  next(): number {
    const at = this.nextAt;
    const meanGap = 1000 / this.rate;
    this.nextAt += this.distribution === 'constant' ? meanGap : -Math.log(1 - this.uniform()) * meanGap;
    return at;
  }

  /** The time the next call to next() will return, without advancing. */
  peek(): number {
    return this.nextAt;
  }

  /** xorshift32 in [0, 1). */
  private uniform(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 4294967296;
  }
}
