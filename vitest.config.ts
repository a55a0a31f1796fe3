import { configDefaults, defineConfig } from 'vitest/config';

// CI's second job (.ci/run, job 2) runs the suite again against the machine's own Redis, Postgres and Chromium.
// These files start or reach none of them (the native binary and its builds, the variant table, the statistics,
// sweep parsing), so their outcome cannot differ between the two jobs; job 2 leaves them out with
// MOEFARM_TEST_SKIP_SERVICE_FREE=1 (about half the suite's test-file time on a 2-core machine, most of it the
// native binary's own checks and builds).
// A file that starts to use a service must leave this list; a file missing from it only runs twice.
export const SERVICE_FREE = [
  'test/native.test.ts',
  'test/variants.test.ts',
  'test/sweep.test.ts',
  'test/table.test.ts',
  'test/imports.test.ts',
  'test/faults/build-flags.test.ts',
  'test/results/compare.test.ts',
  'test/report/html.test.ts',
  'test/db/samples.test.ts',
  'test/stats/*.test.ts',
];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [...configDefaults.exclude, ...(process.env['MOEFARM_TEST_SKIP_SERVICE_FREE'] === '1' ? SERVICE_FREE : [])],
    // Generous: a test that builds the CPU binary from a fresh source pays ~10-30 s of compile on a busy 2-core machine.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Two cores on CI: the end-to-end files run real processes; more parallel files only add contention.
    maxWorkers: 2,
    minWorkers: 1,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
