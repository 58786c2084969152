import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinToCpus } from '../../src/system/cpu-affinity.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';

const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const hasTaskset = process.platform === 'linux' && spawnSync('taskset', ['--version']).status === 0;
let redis: PrivateRedis & { dispose(): Promise<void> };

beforeAll(async () => {
  redis = await startPrivateRedis();
});

afterAll(async () => {
  await redis?.dispose();
});

/** Each thread's allowed CPUs (/proc), by thread id. */
function threadCpus(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map(
    (tid) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1]!,
  );
}

describe.skipIf(!hasTaskset)('pinning a process to CPUs (caliper worker --cpu)', () => {
  it('pins every thread of a running process, and refuses a malformed list or a CPU the machine lacks', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      pinToCpus('0', child.pid!);
      expect(new Set(threadCpus(child.pid!))).toEqual(new Set(['0']));
      expect(() => pinToCpus('0;1', child.pid!)).toThrow(/--cpu: expected a CPU list such as 0, 0,2 or 1-3, got "0;1"/);
      expect(() => pinToCpus(String(availableParallelism() + 64), child.pid!)).toThrow(/cannot pin the process/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('caliper worker --cpu 0 runs every one of its threads on CPU 0', async () => {
    const child = spawn(process.execPath, [CLI, 'worker', '--queue', redis.url, '--cpu', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      let stderr = '';
      await new Promise<void>((resolve, reject) => {
        child.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('waiting for shards')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`worker exited ${code}: ${stderr}`)));
      });
      const cpus = threadCpus(child.pid!);
      expect(cpus.length).toBeGreaterThan(4);
      expect(new Set(cpus)).toEqual(new Set(['0']));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('caliper worker --cpu with a malformed list stops with its message', () => {
    const run = spawnSync(process.execPath, [CLI, 'worker', '--queue', redis.url, '--cpu', 'first'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('--cpu: expected a CPU list such as 0, 0,2 or 1-3, got "first"');
  });
});
