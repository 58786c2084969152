import { describe, expect, it } from 'vitest';
import { startOpenLoop } from '../../src/bench/load-generator.ts';
import type { LoadTarget, OutcomeCallback } from '../../src/bench/load-target.ts';

/** A target answering every request after `delayMs` on a timer: no I/O, so the generator's own CPU is what is measured. */
const timerTarget = (delayMs: number): LoadTarget & { sent: number } => {
  const target = {
    description: 'timer target',
    sent: 0,
    createClient: () => ({
      send: (done: OutcomeCallback) => {
        target.sent++;
        setTimeout(() => done({ ok: true, status: '200' }), delayMs);
      },
      close: () => {},
    }),
  };
  return target;
};

/** CPU (ms) this process used while `work` ran, and the wall time (ms). */
async function cpuOf(work: () => Promise<void>): Promise<{ cpuMs: number; wallMs: number }> {
  const before = process.cpuUsage();
  const started = performance.now();
  await work();
  const used = process.cpuUsage(before);
  return { cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - started };
}

describe('open-loop load generator', () => {
  it('waits for the next arrival on timers, not in a busy loop: a fraction of the CPU a spin takes, on schedule', async () => {
    // What a busy wait gets from this machine right now (a shared machine gives a process less than a core).
    const spin = await cpuOf(
      () =>
        new Promise<void>((resolve) => {
          const until = performance.now() + 1000;
          const again = (): void => {
            if (performance.now() < until) setImmediate(again);
            else resolve();
          };
          again();
        }),
    );
    const rate = 3000;
    const target = timerTarget(2);
    let counters: Awaited<ReturnType<ReturnType<typeof startOpenLoop>['stop']>>;
    const generator = await cpuOf(async () => {
      const running = startOpenLoop(target, rate, 'poisson', 64);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      counters = await running.stop();
    });
    // Before: the generator polled with setImmediate until each next arrival, as much CPU as the spin itself.
    expect(generator.cpuMs / generator.wallMs).toBeLessThan((0.5 * spin.cpuMs) / spin.wallMs);
    // Still the offered rate: the arrivals due are sent at each timer or answer, none skipped.
    expect(counters!.scheduled).toBeGreaterThan(rate * 0.85);
    expect(target.sent).toBe(counters!.scheduled);
  }, 30_000);
});
