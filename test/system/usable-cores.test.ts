import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWorkersOption } from '../../src/cluster/workers-option.ts';
import { cgroupCpuQuota, processCoreBudget, usableCores, WORKER_CORES_ENV } from '../../src/system/usable-cores.ts';

describe('usable cores', () => {
  const dirs: string[] = [];
  const cgroup = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'caliper-cgroup-'));
    dirs.push(dir);
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), content);
    }
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    delete process.env[WORKER_CORES_ENV];
  });

  it('reads a cgroup v2 quota (rounded up), none for "max", and a v1 quota', () => {
    expect(cgroupCpuQuota(cgroup({ 'cpu.max': '150000 100000\n' }))).toBe(2);
    expect(cgroupCpuQuota(cgroup({ 'cpu.max': '50000 100000' }))).toBe(1);
    expect(cgroupCpuQuota(cgroup({ 'cpu.max': 'max 100000' }))).toBeUndefined();
    expect(cgroupCpuQuota(cgroup({ 'cpu/cpu.cfs_quota_us': '400000', 'cpu/cpu.cfs_period_us': '100000' }))).toBe(4);
    expect(cgroupCpuQuota(cgroup({ 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000' }))).toBeUndefined();
    expect(cgroupCpuQuota(cgroup({}))).toBeUndefined();
  });

  it('never exceeds the affinity mask, and a worker divides only its share', () => {
    expect(usableCores()).toBeGreaterThanOrEqual(1);
    expect(usableCores()).toBeLessThanOrEqual(availableParallelism());
    expect(processCoreBudget()).toBe(usableCores());
    process.env[WORKER_CORES_ENV] = '1';
    expect(processCoreBudget()).toBe(1);
    process.env[WORKER_CORES_ENV] = 'bogus';
    expect(processCoreBudget()).toBe(usableCores());
  });

  it('parses --workers N|auto and names the option when the value is wrong', () => {
    expect(parseWorkersOption('3')).toBe(3);
    expect(parseWorkersOption('auto')).toBe(usableCores());
    for (const bad of ['0', '-1', '1.5', 'many', ''])
      expect(() => parseWorkersOption(bad)).toThrow(`--workers: expected a positive integer or "auto", got "${bad}"`);
  });
});
