import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The package's self-reference ('caliper-serving', '…/client') resolves to the sources under test, not dist/.
  // Without 'module': packages listing it before 'node' (the AWS SDK) would load their bundler-only dist-es in Node.
  ssr: { resolve: { conditions: ['caliper-source', ...defaultServerConditions.filter((c) => c !== 'module')] } },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
