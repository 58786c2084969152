import { describe, expect, it } from 'vitest';
import { combineWindows, MeasurementWindow, meanInterval } from '../../src/bench/measurement-window.ts';

describe('a stage mean with its interval', () => {
  it('gives the 95% interval of a mean from the sum, the sum of squares and the count: mean ± 1.96·s/√n', () => {
    // 1, 2, 3, 4: mean 2.5, sample variance 5/3, half-width 1.96·√(5/12) = 1.2652.
    expect(meanInterval(10, 30, 4)).toEqual({ low: 1.2348, high: 3.7652 });
    // The same values four times over: the half-width halves (√n), the sample variance barely moves (n − 1).
    expect(meanInterval(40, 120, 16)).toEqual({ low: 1.9342, high: 3.0658 });
    expect(meanInterval(12, 48, 3)).toEqual({ low: 4, high: 4 });
    expect(meanInterval(4, 16, 1)).toBeUndefined();
    expect(meanInterval(0, 0, 0)).toBeUndefined();
  });

  it("combines the windows' Server-Timing figures into each stage's mean and its interval", () => {
    const windows = [0, 1].map((w) => {
      const window = new MeasurementWindow(w * 1000);
      window.endedAt = (w + 1) * 1000;
      for (const ms of w === 0 ? [1, 2] : [3, 4])
        window.record(ms + 1, { ok: true, status: '200', serverTiming: `inference;dur=${ms}, total;dur=${ms + 0.5}` });
      return window;
    });
    const combined = combineWindows(windows);
    expect(combined.stages).toEqual({ inference: 2.5, total: 3 });
    expect(combined.stageIntervals).toEqual({
      inference: { low: 1.2348, high: 3.7652 },
      total: { low: 1.7348, high: 4.2652 },
    });
  });
});
