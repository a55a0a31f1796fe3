/**
 * The run-level statistics of an unpaired comparison (results/compare.ts
 * verdictOf): Student's t, Welch's test on log run medians, and the cluster
 * bootstrap that resamples whole runs.
 */
import { describe, expect, it } from 'vitest';
import { clusterBootstrapRatio, studentTwoSidedP, welchLogTest } from '../../src/stats/index.js';
import { runSamples, seeded } from '../helpers/latencies.js';

describe('Student t and Welch on run medians', () => {
  it('matches tabulated two-sided critical values', () => {
    expect(studentTwoSidedP(2.776, 4)).toBeCloseTo(0.05, 3);
    expect(studentTwoSidedP(9.925, 2)).toBeCloseTo(0.01, 4);
    expect(studentTwoSidedP(2.576, 1e6)).toBeCloseTo(0.01, 4);
    expect(studentTwoSidedP(0, 5)).toBeCloseTo(1, 12);
  });

  it('tests the log ratio of run medians', () => {
    const w = welchLogTest([100, 102, 98], [90, 91, 89]);
    expect(w.diff).toBeGreaterThan(0);
    expect(w.p).toBeLessThan(0.01);
    expect(welchLogTest([100, 100], [100, 100]).p).toBe(1);
  });

  it('widens the cluster bootstrap interval with run-to-run spread', () => {
    const r = seeded(3);
    const tight = clusterBootstrapRatio([0, 1, 2].map(() => runSamples(r, 50, 100, 0.001)), [0, 1, 2].map(() => runSamples(r, 50, 100, 0.001)), { resamples: 1000 });
    const loose = clusterBootstrapRatio([0, 1, 2].map(() => runSamples(r, 50, 100, 0.08)), [0, 1, 2].map(() => runSamples(r, 50, 100, 0.08)), { resamples: 1000 });
    expect(loose.hi - loose.lo).toBeGreaterThan(3 * (tight.hi - tight.lo));
  });
});
