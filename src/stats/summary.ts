import { quantileSorted, sortedCopy } from './quantile.js';
import { assertSamples } from './validate.js';

/** Descriptive statistics of one sample; quantiles are type 7 (linear interpolation, numpy's default). */
export interface Summary {
  n: number;
  min: number;
  p10: number;
  median: number;
  mean: number;
  p90: number;
  p99: number;
  max: number;
  /** Sample standard deviation (n - 1 denominator); 0 for n = 1. */
  stdev: number;
  /** Median absolute deviation from the median, unscaled (multiply by 1.4826 to estimate sigma of a normal). */
  mad: number;
}

export function summarize(samples: readonly number[]): Summary {
  assertSamples('summarize: samples', samples);
  const s = sortedCopy(samples);
  const n = s.length;
  let sum = 0;
  for (const v of s) sum += v;
  const mean = sum / n;
  // Two-pass variance: the one-pass formula loses digits when the spread is
  // tiny relative to the level (1000.01 +- 0.01 us).
  let ss = 0;
  for (const v of s) ss += (v - mean) * (v - mean);
  const median = quantileSorted(s, 0.5);
  const dev = s.map((v) => Math.abs(v - median)).sort();
  return {
    n,
    min: s[0] as number,
    p10: quantileSorted(s, 0.1),
    median,
    mean,
    p90: quantileSorted(s, 0.9),
    p99: quantileSorted(s, 0.99),
    max: s[n - 1] as number,
    stdev: n > 1 ? Math.sqrt(ss / (n - 1)) : 0,
    mad: quantileSorted(dev, 0.5),
  };
}
