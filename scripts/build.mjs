#!/usr/bin/env node
// `npm run build`: compile src/ to dist/ (JavaScript, .d.ts and source maps) and copy the files tsc does not emit
// (the gRPC .proto, the worker-thread entry). Run by `npm pack`/`npm publish` through `prepack`.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')],
  { stdio: 'inherit' },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const ASSETS = /\.(proto|mjs|json)$/;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !ASSETS.test(entry.name)) continue;
  const from = join(entry.parentPath, entry.name);
  cpSync(from, join(dist, relative(src, from)));
}
chmodSync(join(dist, 'cli/main.js'), 0o755);
console.error(`built ${relative(process.cwd(), dist) || dist}`);
