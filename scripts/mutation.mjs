#!/usr/bin/env node
// `npm run test:mutation [module ...]`: StrykerJS over the modules that decide correctness and safety, one module
// at a time (scripts/mutation-modules.mjs names each with its test files), at a lowered CPU priority, with one
// test process. Ends with a table of scores; reports/mutation/<module>.html holds each module's mutants.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { MUTATION_MODULES } from './mutation-modules.mjs';

const asked = process.argv.slice(2);
const unknown = asked.filter((m) => !(m in MUTATION_MODULES));
if (unknown.length > 0) {
  console.error(`unknown module ${unknown.join(', ')}: expected ${Object.keys(MUTATION_MODULES).join(', ')}`);
  process.exit(2);
}
const modules = asked.length > 0 ? asked : Object.keys(MUTATION_MODULES);
// Like `nice -n 10`: the children (Stryker, vitest) inherit the priority.
try {
  setPriority(10);
} catch {
  // Already lower, or not permitted: run as is.
}

/** Counts from a mutation-testing-report-schema JSON report. */
function scoresOf(file) {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const counts = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, CompileError: 0, RuntimeError: 0 };
  for (const entry of Object.values(report.files))
    for (const m of entry.mutants) counts[m.status] = (counts[m.status] ?? 0) + 1;
  const detected = counts.Killed + counts.Timeout;
  const covered = detected + counts.Survived;
  const valid = covered + counts.NoCoverage;
  return {
    ...counts,
    total: valid === 0 ? 100 : (100 * detected) / valid,
    covered: covered === 0 ? 100 : (100 * detected) / covered,
  };
}

let failed = false;
const rows = [];
for (const name of modules) {
  console.log(`\n== mutation testing: ${name} (${MUTATION_MODULES[name].mutate.join(', ')})`);
  const run = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], {
    stdio: 'inherit',
    env: { ...process.env, CALIPER_MUTATION_MODULE: name },
  });
  if (run.status !== 0) failed = true;
  const report = `reports/mutation/${name}.json`;
  if (existsSync(report)) rows.push({ name, ...scoresOf(report) });
}
console.log('\nmodule            killed  timeout  survived  no-cov  ignored  score(covered)  score(total)');
for (const r of rows) {
  console.log(
    `${r.name.padEnd(17)} ${String(r.Killed).padStart(6)} ${String(r.Timeout).padStart(8)} ${String(r.Survived).padStart(9)} ${String(r.NoCoverage).padStart(7)} ${String(r.Ignored).padStart(8)} ${r.covered.toFixed(1).padStart(14)}% ${r.total.toFixed(1).padStart(12)}%`,
  );
}
process.exit(failed ? 1 : 0);
