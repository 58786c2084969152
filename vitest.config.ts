import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The package's self-reference ('caliper-serving', '…/client') resolves to the sources under test, not dist/.
  // (An alias rather than a resolve condition: vitest hands conditions on to Node for every external package.)
  resolve: {
    alias: [
      { find: /^caliper-serving$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      {
        find: /^caliper-serving\/client$/,
        replacement: fileURLToPath(new URL('./src/client/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // A mutation run sets a shorter limit for its module's tests (scripts/mutation-modules.mjs, testTimeoutMs).
    testTimeout: Number(process.env.CALIPER_TEST_TIMEOUT_MS) || 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
