import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The package's self-reference ('caliper-serving', '…/client') resolves to the sources under test, not dist/.
  ssr: { resolve: { conditions: ['caliper-source', ...defaultServerConditions] } },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
