import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Generous: a test that builds the CPU binary from a fresh source pays ~10-30 s of compile on a busy 2-core machine.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Two cores on CI: the end-to-end files run real processes; more parallel files only add contention.
    maxWorkers: 2,
    minWorkers: 1,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
