import { createHook } from 'node:async_hooks';

/**
 * Counts the wake-ups a piece of code asks the event loop for while the counter runs: timers created (setTimeout,
 * setInterval: async resource type `Timeout`), immediates created (`Immediate`), and `TimeoutOverflowWarning`s (a timer
 * asked to wait longer than Node can, e.g. Infinity, which Node turns into a 1 ms timer). Tests use it to tell a wait
 * on one timer from polling, and an idle scheduler from one that keeps waking up.
 */
export class WakeupCounter {
  timeouts = 0;
  immediates = 0;
  overflows = 0;
  private readonly hook = createHook({
    init: (_id, type) => {
      if (type === 'Timeout') this.timeouts++;
      else if (type === 'Immediate') this.immediates++;
    },
  });
  private readonly onWarning = (warning: Error): void => {
    if (warning.name === 'TimeoutOverflowWarning') this.overflows++;
  };

  start(): this {
    process.on('warning', this.onWarning);
    this.hook.enable();
    return this;
  }

  /** Stops counting after the warnings already emitted (they are delivered on a later tick) have been seen. */
  async stop(): Promise<void> {
    this.hook.disable();
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', this.onWarning);
  }
}

/** Lets the event loop run for `ms` without creating a timer (immediates only), so a WakeupCounter sees none of ours. */
export async function idleFor(ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) await new Promise((resolve) => setImmediate(resolve));
}
