/**
 * The soak, kept out of `npm test`: `npm run build && npx vitest run --config test/faults/soak.config.ts`.
 * Knobs (environment): SOAK_POINTS (default 2000), SOAK_WORKERS (4), SOAK_FAULT_EVERY_MS (4000).
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/faults/**/*.soak.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
    minWorkers: 1,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
