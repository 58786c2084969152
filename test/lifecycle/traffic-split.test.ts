import { describe, expect, it } from 'vitest';
import { choosesCanary, routingPosition } from '../../src/lifecycle/traffic-policy.ts';

describe('canary split by routing key', () => {
  it.each([['u'], ['user-'], ['k'], ['customer_000']])(
    'sends about its weight of sequential keys (prefix "%s" and a number) to the canary',
    (prefix) => {
      for (const weight of [0.05, 0.1, 0.5]) {
        const keys = Array.from({ length: 4000 }, (_, i) => `${prefix}${i + 1}`);
        const share = keys.filter((k) => choosesCanary({ weight }, k)).length / keys.length;
        expect(Math.abs(share - weight), `${prefix}… at ${weight}: ${share}`).toBeLessThan(0.025);
      }
    },
  );

  it('is sticky: a key always gets the same side, and positions spread over [0, 1)', () => {
    expect(routingPosition('user-42')).toBe(routingPosition('user-42'));
    const positions = Array.from({ length: 1000 }, (_, i) => routingPosition(`k${i}`));
    expect(Math.min(...positions)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...positions)).toBeLessThan(1);
    const firstTenth = Array.from({ length: 40 }, (_, i) => `k${i + 1}`).filter((k) =>
      choosesCanary({ weight: 0.1 }, k),
    ).length;
    expect(firstTenth).toBeGreaterThan(0);
  });
});
