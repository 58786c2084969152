/**
 * Internal phase timers for profiling `caliper batch` (CALIPER_BATCH_PROFILE=1): each phase's wall and this process's
 * CPU milliseconds (all threads, DuckDB's and ONNX Runtime's included) are printed to stderr as the phase ends.
 * Off by default: then `phase` only runs its function.
 */
const enabled = process.env.CALIPER_BATCH_PROFILE === '1';

export async function phase<T>(label: string, run: () => Promise<T>): Promise<T> {
  if (!enabled) return run();
  const wall = performance.now();
  const cpu = process.cpuUsage();
  try {
    return await run();
  } finally {
    const used = process.cpuUsage(cpu);
    process.stderr.write(
      `[batch] ${label}: ${(performance.now() - wall).toFixed(0)} ms wall, ${((used.user + used.system) / 1000).toFixed(0)} ms CPU, resident ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MiB\n`,
    );
  }
}

/** Synchronous variant of phase(). */
export function phaseSync<T>(label: string, run: () => T): T {
  if (!enabled) return run();
  const wall = performance.now();
  const cpu = process.cpuUsage();
  try {
    return run();
  } finally {
    const used = process.cpuUsage(cpu);
    process.stderr.write(
      `[batch] ${label}: ${(performance.now() - wall).toFixed(0)} ms wall, ${((used.user + used.system) / 1000).toFixed(0)} ms CPU, resident ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MiB\n`,
    );
  }
}

/**
 * A phase made of many short steps (a streamed read's chunk fetches): `time` adds each step's wall and CPU, and `end`
 * prints the totals as one line. Off by default: then `time` only runs its function.
 */
export function steppedPhase(label: string): { time<T>(run: () => Promise<T>): Promise<T>; end(): void } {
  let wall = 0;
  let cpu = 0;
  let steps = 0;
  return {
    async time<T>(run: () => Promise<T>): Promise<T> {
      if (!enabled) return run();
      const started = performance.now();
      const used = process.cpuUsage();
      try {
        return await run();
      } finally {
        const spent = process.cpuUsage(used);
        wall += performance.now() - started;
        cpu += (spent.user + spent.system) / 1000;
        steps++;
      }
    },
    end(): void {
      if (!enabled) return;
      process.stderr.write(
        `[batch] ${label}: ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU over ${steps} steps, resident ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MiB\n`,
      );
    },
  };
}

const tracing = process.env.CALIPER_BATCH_TRACE === '1';

/**
 * Writes `[batch] LINE` to stderr under CALIPER_BATCH_PROFILE=1 (read at each call: tests set it in-process): why a
 * job took the path it took.
 */
export function profileNote(line: string): void {
  if (process.env.CALIPER_BATCH_PROFILE === '1') process.stderr.write(`[batch] ${line}\n`);
}

/**
 * A timeline mark for `--queue` jobs (CALIPER_BATCH_TRACE=1): `[trace] <epoch ms> <pid> <process CPU ms> <event>` on
 * stderr, so that the submitter's and every worker's marks on one machine sort into one timeline
 * (bench/batch-queue-timeline.ts). Off by default: then it does nothing.
 */
export function traceMark(event: string): void {
  if (!tracing) return;
  const { user, system } = process.cpuUsage();
  process.stderr.write(
    `[trace] ${(performance.timeOrigin + performance.now()).toFixed(1)} ${process.pid} ${((user + system) / 1000).toFixed(1)} ${event}\n`,
  );
}
