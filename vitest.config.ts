import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // One process per test file shares the card: no up-front pool growth in each of them.
    env: { STATESPACE_CUDA_PREGROW_MB: process.env.STATESPACE_CUDA_PREGROW_MB ?? '0' },
  },
});
