#!/usr/bin/env node
// The `caliper` command in a source checkout: runs the TypeScript sources through tsx, so `npm start` and the tests
// need no build step. The installed package's `caliper` is dist/cli/main.js (package.json "bin"); where the sources
// are absent (inside the package) this file hands over to it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const sources = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(fileURLToPath(sources))) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(sources.href);
} else {
  await import('../dist/cli/main.js');
}
