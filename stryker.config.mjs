// StrykerJS configuration for `npm run test:mutation` (scripts/mutation.mjs runs it once per module, naming the
// module in CALIPER_MUTATION_MODULE). Not part of `npm test`: see TESTING.md for the command and the scores.
import { MUTATION_MODULES } from './scripts/mutation-modules.mjs';

const name = process.env.CALIPER_MUTATION_MODULE ?? 'auth';
const module = MUTATION_MODULES[name];
if (!module)
  throw new Error(`CALIPER_MUTATION_MODULE=${name}: expected one of ${Object.keys(MUTATION_MODULES).join(', ')}`);

// The test processes StrykerJS starts inherit this; vitest.config.ts reads it (see testTimeoutMs in mutation-modules.mjs).
if (module.testTimeoutMs !== undefined) process.env.CALIPER_TEST_TIMEOUT_MS = String(module.testTimeoutMs);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.config.ts', related: false },
  // Each mutant runs only the tests that reached it in the dry run.
  coverageAnalysis: 'perTest',
  // Static mutants (module-level values, evaluated at import) cannot be measured with `testFiles` in StrykerJS 9.6:
  // they are activated after the module has loaded and always "survive" (stryker-js issues #6144, #6209). They are
  // reported as Ignored instead of counted; TESTING.md lists them.
  ignoreStatic: true,
  mutate: module.mutate,
  testFiles: module.testFiles,
  // Two shared cores: one test process at a time.
  concurrency: 1,
  // A mutant that stops a timer or a wake-up hangs its test: give up soon after the dry run's time, not a minute later.
  timeoutMS: 4_000,
  timeoutFactor: 1.5,
  // The sandbox needs no tsconfig rewrite (nothing extends a file outside it), and TypeScript 7 has no JS API for it.
  tsconfigFile: 'tsconfig.not-rewritten.json',
  // One sandbox folder per module, so two modules can be measured at once; neither copies the other's sandbox.
  tempDirName: `.stryker-tmp/${name}`,
  ignorePatterns: [
    '.stryker-tmp',
    '.stryker-tmp-*',
    'bench/data',
    'bench/models',
    'bench/results',
    'dist',
    'coverage',
    'tmp',
    '.caliper',
  ],
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  thresholds: { high: 90, low: 80, break: null },
  cleanTempDir: 'always',
};
