import { quantileSorted, sortedCopy } from './quantile.js';
import { assertSamples } from './validate.js';

/**
 * Tukey box-plot numbers: the box is p25..p75 with the median inside; the
 * whiskers reach the most extreme samples within 1.5 IQR of the box (never
 * past the data), and everything beyond is an outlier drawn on its own. Using
 * the standard rule keeps the plots readable by anyone who knows box plots.
 */
export interface BoxStats {
  n: number;
  q1: number;
  median: number;
  q3: number;
  /** Lower whisker: smallest sample >= q1 - 1.5 IQR. */
  lo: number;
  /** Upper whisker: largest sample <= q3 + 1.5 IQR. */
  hi: number;
  mean: number;
  /** Samples outside [lo, hi], ascending. */
  outliers: number[];
}

export function boxStats(samples: readonly number[]): BoxStats {
  assertSamples('boxStats: samples', samples);
  const s = sortedCopy(samples);
  const q1 = quantileSorted(s, 0.25);
  const q3 = quantileSorted(s, 0.75);
  const fenceLo = q1 - 1.5 * (q3 - q1);
  const fenceHi = q3 + 1.5 * (q3 - q1);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  let sum = 0;
  const outliers: number[] = [];
  for (const v of s) {
    sum += v;
    if (v < fenceLo || v > fenceHi) outliers.push(v);
    else {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return { n: s.length, q1, median: quantileSorted(s, 0.5), q3, lo, hi, mean: sum / s.length, outliers };
}
