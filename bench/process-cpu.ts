import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat (10 ms ticks). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Wake-ups a process has had so far: voluntary context switches (the thread slept, then was woken), summed over its
 * threads (/proc/PID/task/TID/status), and those of its main thread apart. Threads that exited are not counted.
 */
export function wakeups(pid: number): { all: number; main: number } {
  let all = 0;
  let main = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread exited
    }
    const count = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    all += count;
    if (tid === String(pid)) main = count;
  }
  return { all, main };
}

/**
 * CPU seconds (user + system, 10 ms ticks) each thread of a process has used so far, by thread id, with its name
 * (/proc/PID/task/TID/comm: `node` for the main thread, `V8 DefaultWorke` for V8's helpers, `libuv-worker`, …).
 * Threads that exited are absent.
 */
export function threadCpuSeconds(pid: number): Map<string, { name: string; seconds: number }> {
  const out = new Map<string, { name: string; seconds: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
        .replace(/^.*\) /, '')
        .split(' ');
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, {
        name: tid === String(pid) ? 'main' : name,
        seconds: (Number(fields[11]) + Number(fields[12])) / 100,
      });
    } catch {
      // the thread exited
    }
  }
  return out;
}
