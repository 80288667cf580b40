import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // One process per test file shares the card, and each keeps the blocks it frees cached: no
    // up-front pool growth in each of them, and at most 6 at once (15 workers on a 16-core GPU
    // host ran an 80 GB H100 out of memory in unrelated tests).
    env: { STATESPACE_CUDA_PREGROW_MB: process.env.STATESPACE_CUDA_PREGROW_MB ?? '0' },
    maxWorkers: 6,
  },
});
