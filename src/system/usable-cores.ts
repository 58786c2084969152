import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** The environment variable through which `caliper serve --workers` gives each worker its share of the cores. */
export const WORKER_CORES_ENV = 'CALIPER_WORKER_CORES';

/**
 * The CPU quota of this process's cgroup, in cores (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` /
 * `cpu.cfs_period_us`), rounded up; undefined when there is no quota ("max", -1) or no cgroup file to read.
 */
export function cgroupCpuQuota(root = '/sys/fs/cgroup'): number | undefined {
  const read = (file: string): string | undefined => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const v2 = read(`${root}/cpu.max`);
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    if (quota === undefined || quota === 'max') return undefined;
    return coresOf(Number(quota), Number(period ?? 100_000));
  }
  const quota = read(`${root}/cpu/cpu.cfs_quota_us`) ?? read(`${root}/cpu.cfs_quota_us`);
  const period = read(`${root}/cpu/cpu.cfs_period_us`) ?? read(`${root}/cpu.cfs_period_us`);
  if (quota === undefined || period === undefined) return undefined;
  return coresOf(Number(quota), Number(period));
}

function coresOf(quotaUs: number, periodUs: number): number | undefined {
  if (!Number.isFinite(quotaUs) || !Number.isFinite(periodUs) || quotaUs <= 0 || periodUs <= 0) return undefined;
  return Math.max(1, Math.ceil(quotaUs / periodUs));
}

/**
 * The cores this process may use: the CPU affinity mask (Node's availableParallelism reads sched_getaffinity)
 * capped by the cgroup CPU quota (a container's `--cpus`). At least 1.
 */
export function usableCores(): number {
  const affinity = availableParallelism();
  const quota = cgroupCpuQuota();
  return Math.max(1, quota === undefined ? affinity : Math.min(affinity, quota));
}

/**
 * The cores this process's model instances may divide among themselves: the worker's share when it is one of
 * `caliper serve --workers N` (set by the primary, usable cores / N, at least 1), else every usable core.
 */
export function processCoreBudget(): number {
  const share = Number(process.env[WORKER_CORES_ENV]);
  return Number.isInteger(share) && share >= 1 ? share : usableCores();
}
