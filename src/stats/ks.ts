import { sortedCopy } from './quantile.js';
import { assertSamples } from './validate.js';

/**
 * Two-sample Kolmogorov-Smirnov test: the largest gap between the two
 * empirical CDFs. Unlike Mann-Whitney it also reacts to a change of shape with
 * the same median (a new second mode, a wider spread), which is why the
 * verdict reports it next to the rank test.
 */

export interface KsResult {
  /** sup_t |F_x(t) - F_y(t)|, in [0, 1]. */
  d: number;
  /** Effective sample size n1 n2 / (n1 + n2). */
  en: number;
  /** Asymptotic two-sided p-value (see ksTest). */
  p: number;
}

export function ksStatistic(x: readonly number[], y: readonly number[]): number {
  assertSamples('ksStatistic: x', x);
  assertSamples('ksStatistic: y', y);
  const a = sortedCopy(x);
  const b = sortedCopy(y);
  let i = 0;
  let j = 0;
  let d = 0;
  // Walk both sorted samples; step past every copy of the current value
  // before comparing, so ties between the samples do not open a false gap.
  while (i < a.length && j < b.length) {
    const t = Math.min(a[i] as number, b[j] as number);
    while (i < a.length && (a[i] as number) <= t) i++;
    while (j < b.length && (b[j] as number) <= t) j++;
    d = Math.max(d, Math.abs(i / a.length - j / b.length));
  }
  return d;
}

/**
 * Q_KS(lambda) = P(K > lambda) for the Kolmogorov distribution
 * = 2 sum_{j>=1} (-1)^(j-1) exp(-2 j^2 lambda^2). For small lambda that series
 * converges slowly, so there the equivalent Jacobi-theta form is used.
 */
export function kolmogorovSf(lambda: number): number {
  if (!(lambda > 0)) return 1;
  if (lambda < 1.18) {
    // 1 - sqrt(2 pi)/lambda * sum_{j>=1} exp(-(2j-1)^2 pi^2 / (8 lambda^2))
    const w = (Math.PI * Math.PI) / (8 * lambda * lambda);
    let s = 0;
    for (let j = 1; j < 20; j++) {
      const k = 2 * j - 1;
      const term = Math.exp(-k * k * w);
      s += term;
      if (term < 1e-17 * s) break;
    }
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / lambda) * s));
  }
  let s = 0;
  for (let j = 1; j < 100; j++) {
    const term = Math.exp(-2 * j * j * lambda * lambda);
    s += j % 2 === 1 ? term : -term;
    if (term < 1e-17 * Math.abs(s)) break;
  }
  return Math.min(1, Math.max(0, 2 * s));
}

/**
 * p = Q_KS((sqrt(en) + 0.12 + 0.11/sqrt(en)) * D): the Kolmogorov limit with
 * Stephens' small-sample correction (as in Numerical Recipes), good to a few
 * percent of p from en ~ 4 up; exact small-sample KS is not implemented
 * because the farm's samples are 50+ per variant.
 */
export function ksTest(x: readonly number[], y: readonly number[]): KsResult {
  const d = ksStatistic(x, y);
  const en = (x.length * y.length) / (x.length + y.length);
  const s = Math.sqrt(en);
  return { d, en, p: kolmogorovSf((s + 0.12 + 0.11 / s) * d) };
}
