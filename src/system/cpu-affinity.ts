import { spawnSync } from 'node:child_process';
import { CaliperError } from '../errors.ts';

const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/**
 * Pins every thread of process `pid` (this one by default) to `cpus`, a CPU list as taskset(1) reads it ("0", "0,2",
 * "1-3"); threads it starts later inherit the mask from the thread that starts them. Linux, through util-linux's
 * taskset.
 * Errors: CaliperError CALIPER_INVALID_INPUT for a malformed list, CPUs the process may not use, or no taskset.
 */
export function pinToCpus(cpus: string, pid: number = process.pid): void {
  if (!CPU_LIST.test(cpus))
    throw new CaliperError('CALIPER_INVALID_INPUT', `--cpu: expected a CPU list such as 0, 0,2 or 1-3, got "${cpus}"`);
  const run = spawnSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { encoding: 'utf8' });
  if (run.error || run.status !== 0)
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--cpu ${cpus}: cannot pin the process (${run.error ? `taskset: ${run.error.message}` : run.stderr.trim()}; taskset comes with util-linux, on Linux)`,
    );
}
