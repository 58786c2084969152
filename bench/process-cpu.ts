import { readFileSync } from 'node:fs';

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat (10 ms ticks). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
