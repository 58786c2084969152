#!/usr/bin/env node
// `npm test`: type-check, run vitest with its JSON reporter, and end with a plain "N passed, N failed" line
// (CI reads that line, not vitest's summary). Extra arguments go to vitest (e.g. a test file filter).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const resultsFile = '.vitest-results.json';
rmSync(resultsFile, { force: true });

const typecheck = spawnSync('npx', ['tsc', '--noEmit'], { stdio: 'inherit' });
if (typecheck.status !== 0) {
  console.log('type check failed');
}

// Lint and formatting (Biome, biome.jsonc), the same check as `npm run lint`; CALIPER_LINT=0 skips it locally.
const lintEnabled = process.env.CALIPER_LINT !== '0';
const lint = lintEnabled ? spawnSync('npx', ['biome', 'check'], { stdio: 'inherit' }) : { status: 0 };
if (lint.status !== 0) {
  console.log('lint failed (npm run lint)');
}

const vitest = spawnSync(
  'npx',
  [
    'vitest',
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${resultsFile}`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);

let passed = 0;
let failed = 0;
try {
  const results = JSON.parse(readFileSync(resultsFile, 'utf8'));
  passed = results.numPassedTests;
  failed = results.numFailedTests;
  if (results.numFailedTestSuites > 0 && failed === 0) failed = results.numFailedTestSuites;
} catch {
  failed = Math.max(failed, 1);
}
if (typecheck.status !== 0) failed += 1;
if (lint.status !== 0) failed += 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && vitest.status === 0 ? 0 : 1);
