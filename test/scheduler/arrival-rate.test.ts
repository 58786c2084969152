import { describe, expect, it } from 'vitest';
import { ArrivalRate } from '../../src/scheduler/arrival-rate.ts';

/** A rate that has seen `gaps` gaps of `ms` each, the first arrival at 0. */
function steady(gaps: number, ms: number, longest = 1000): ArrivalRate {
  const rate = new ArrivalRate();
  for (let i = 0; i <= gaps; i++) rate.arrive(i * ms, longest);
  return rate;
}

describe('ArrivalRate', () => {
  it('has no mean before a second arrival', () => {
    const rate = new ArrivalRate();
    expect(rate.meanGapMs).toBeNaN();
    rate.arrive(100, 1000);
    expect(rate.meanGapMs).toBeNaN();
    expect(rate.expectedWithin(1)).toBe(Number.POSITIVE_INFINITY);
  });

  it('takes the first gap as the mean, then weighs each new gap 1/8', () => {
    const rate = new ArrivalRate();
    rate.arrive(100, 1000);
    rate.arrive(110, 1000);
    expect(rate.meanGapMs).toBe(10);
    rate.arrive(112, 1000);
    // 10 + (2 - 10) / 8
    expect(rate.meanGapMs).toBe(9);
    rate.arrive(140, 1000);
    // 9 + (28 - 9) / 8
    expect(rate.meanGapMs).toBe(11.375);
  });

  it('expects arrivals only once it has seen 8 gaps; before, any number may come', () => {
    expect(steady(7, 10).meanGapMs).toBe(10);
    expect(steady(7, 10).expectedWithin(5)).toBe(Number.POSITIVE_INFINITY);
    expect(steady(8, 10).expectedWithin(5)).toBe(0.5);
    expect(steady(8, 10).expectedWithin(10)).toBe(1);
    expect(steady(40, 4).expectedWithin(0.5)).toBe(0.125);
  });

  it('counts a gap longer than the longest as the longest', () => {
    const rate = new ArrivalRate();
    rate.arrive(0, 100);
    rate.arrive(5000, 100);
    expect(rate.meanGapMs).toBe(100);
    rate.arrive(5040, 100);
    expect(rate.meanGapMs).toBe(92.5);
    rate.arrive(5140, 100);
    // exactly the longest counts whole: 92.5 + (100 - 92.5) / 8
    expect(rate.meanGapMs).toBe(93.4375);
  });

  it('expects without bound after arrivals that came all at once', () => {
    const rate = steady(8, 0);
    expect(rate.meanGapMs).toBe(0);
    expect(rate.expectedWithin(0.5)).toBe(Number.POSITIVE_INFINITY);
  });
});
