/*
 * Reading a V8 .cpuprofile (bench/profiled-server.ts writes them): self time per function and per package, in
 * microseconds of CPU per request.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  hitCount?: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time of a .cpuprofile in µs of CPU per request, by function and by package (idle samples left out). */
export function profileSummary(
  file: string,
  cpuUsPerRequest: number,
  top = 25,
): { functions: { fn: string; us: number }[]; packages: { pkg: string; us: number }[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let busy = 0;
  for (const node of profile.nodes) {
    const n = node.hitCount ?? 0;
    const { functionName, url } = node.callFrame;
    if (functionName === '(idle)' || n === 0) continue;
    busy += n;
    const where = url.replace(/^.*\/(node_modules\/|src\/)/, '$1');
    const key = `${functionName || '(anonymous)'} ${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + n);
    const pkg = url.includes('node_modules/')
      ? url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1')
      : url.includes('/src/')
        ? `caliper ${url.replace(/^.*\/src\//, 'src/').replace(/\/[^/]+$/, '/')}`
        : url.startsWith('node:')
          ? url
          : functionName.startsWith('(')
            ? functionName
            : '(native: syscalls, builtins)';
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + n);
  }
  const us = (n: number): number => Math.round((n / busy) * cpuUsPerRequest * 10) / 10;
  return {
    functions: [...byFunction]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, n]) => ({ fn, us: us(n) })),
    packages: [...byPackage]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([pkg, n]) => ({ pkg, us: us(n) })),
  };
}
