import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests bind real ports and spawn processes; two cores in CI.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
    // Child `tandem` processes run from source, never from a stale dist/.
    env: { TANDEM_FROM_SOURCE: '1' },
  },
});
