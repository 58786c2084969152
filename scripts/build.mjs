#!/usr/bin/env node
// `npm run build`: compile src/ to dist/ (JavaScript, .d.ts and source maps) and copy the files tsc does not emit
// (the gRPC .proto, the worker-thread entry). Run by `npm pack`/`npm publish` through `prepack`.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

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

// The CommonJS dependencies that every `caliper batch` start loads (src/system/bundled-dependency.ts), each written as
// one file: Node then resolves, reads and compiles one file instead of ~70–90. Same code; native parts stay packages.
const { build } = await import('esbuild');
const { BUNDLED_DEPENDENCIES } = await import(pathToFileURL(join(dist, 'system/bundled-dependency.js')).href);
for (const [name, file] of Object.entries(BUNDLED_DEPENDENCIES)) {
  await build({
    stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root, loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['@duckdb/node-bindings'],
    outfile: join(dist, 'vendor', file),
    legalComments: 'inline',
    logLevel: 'warning',
  });
}
chmodSync(join(dist, 'cli/main.js'), 0o755);
console.error(`built ${relative(process.cwd(), dist) || dist}`);
