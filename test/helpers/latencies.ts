/**
 * Seeded, kernel-latency-like samples for the tests of the statistics, the
 * comparisons and the report: the same seed gives the same numbers on every
 * machine and every run, so a test's verdict never depends on luck.
 */
import { mulberry32, normalDraw, type Rng } from '../../src/stats/index.js';

export type { Rng };

export function seeded(seed: number): Rng {
  return mulberry32(seed);
}

/**
 * n lognormal latencies around `median` (sigma as a fraction), a share
 * `outliers` of them 30% slower (a preemption, a clock dip). With no outliers
 * the generator draws nothing for them, so such a series is the plain
 * lognormal one.
 */
export function latencies(rng: Rng, n: number, median: number, sigma = 0.03, outliers = 0.03): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let v = median * Math.exp(sigma * normalDraw(rng));
    if (outliers > 0 && rng() < outliers) v *= 1.3;
    out.push(v);
  }
  return out;
}

/** One run's samples: the run's own level (median x exp(drift N(0,1))), then lognormal within-run noise, no outliers. */
export function runSamples(rng: Rng, n: number, median: number, drift: number, sigma = 0.02): number[] {
  return latencies(rng, n, median * Math.exp(drift * normalDraw(rng)), sigma, 0);
}
