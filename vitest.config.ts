import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One forked worker per core (vitest's default leaves one core idle: on 2 cores, one file at a time).
    pool: 'forks',
    maxWorkers: Math.max(2, availableParallelism()),
    fileParallelism: true,
    // The default output, then one line that counts the skipped tests and why (test/support/skip-summary.ts).
    reporters: ['default', './test/support/skip-summary.ts'],
  },
});
