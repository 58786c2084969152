import cluster from 'node:cluster';
import { InvalidArgumentError } from 'commander';
import { usableCores } from '../system/usable-cores.ts';

/**
 * Parses `--workers N|auto`: a positive integer, or `auto` for the cores this process may use (CPU affinity,
 * capped by the cgroup CPU quota).
 */
export function parseWorkersOption(value: string): number {
  if (value === 'auto') return usableCores();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`--workers: expected a positive integer or "auto", got "${value}"`);
  return n;
}

/** True when `caliper serve` should run as the primary or a worker of a cluster rather than as one process. */
export function servesWithWorkers(workers: number | undefined): boolean {
  return cluster.isWorker || (workers ?? 1) > 1;
}
