import { StatsInputError } from './errors.js';
import { twoSidedP } from './normal.js';
import { rankWithTies } from './ranks.js';
import { assertSamples } from './validate.js';

/**
 * Mann-Whitney U (Wilcoxon rank-sum) test of two independent samples: does
 * one tend to take larger values than the other? It assumes nothing about the
 * shape of the distributions, which matters for kernel latencies: they are
 * skewed, often bimodal (clock changes), and have outliers.
 */

/** Exact p-values are used (method 'auto') when there are no ties and both samples have at most this many values. */
export const MW_EXACT_MAX_N = 50;

export interface MannWhitneyOptions {
  /**
   * 'exact': permutation distribution of U (requires no ties);
   * 'asymptotic': normal approximation with tie correction;
   * 'auto' (default): exact when there are no ties and both n <= MW_EXACT_MAX_N.
   */
  method?: 'auto' | 'exact' | 'asymptotic';
  /** Continuity correction of 0.5 in the normal approximation. Default true. */
  continuity?: boolean;
}

export interface MannWhitneyResult {
  /** U of the first sample: #(x_i > y_j) + 0.5 * #(x_i == y_j). */
  u1: number;
  /** U of the second sample; u1 + u2 = n1 * n2. */
  u2: number;
  /** min(u1, u2), the statistic tables list. */
  u: number;
  /** Normal-approximation z of u1 (null for the exact method). */
  z: number | null;
  /** Two-sided p-value. */
  p: number;
  method: 'exact' | 'asymptotic';
  /** Whether any value occurs more than once across both samples. */
  ties: boolean;
  /** Common-language effect size P(X > Y) + 0.5 P(X = Y) = u1 / (n1 n2). */
  cl: number;
  /** Cliff's delta P(X > Y) - P(X < Y) = 2 cl - 1, in [-1, 1]. */
  cliffsDelta: number;
}

export function mannWhitney(
  x: readonly number[],
  y: readonly number[],
  opts: MannWhitneyOptions = {},
): MannWhitneyResult {
  assertSamples('mannWhitney: x', x);
  assertSamples('mannWhitney: y', y);
  const n1 = x.length;
  const n2 = y.length;
  const n = n1 + n2;
  const { ranks, tieTerm } = rankWithTies([...x, ...y]);
  let r1 = 0;
  for (let i = 0; i < n1; i++) r1 += ranks[i] as number;
  const u1 = r1 - (n1 * (n1 + 1)) / 2;
  const u2 = n1 * n2 - u1;
  const u = Math.min(u1, u2);
  const ties = tieTerm > 0;
  const cl = u1 / (n1 * n2);
  const base = { u1, u2, u, ties, cl, cliffsDelta: 2 * cl - 1 };

  const method = opts.method ?? 'auto';
  if (method === 'exact' && ties) {
    throw new StatsInputError('mannWhitney: the exact method needs samples without ties; use method "asymptotic"');
  }
  const useExact = method === 'exact' || (method === 'auto' && !ties && n1 <= MW_EXACT_MAX_N && n2 <= MW_EXACT_MAX_N);
  if (useExact) {
    return { ...base, z: null, p: exactTwoSidedP(n1, n2, u), method: 'exact' };
  }

  const mu = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) {
    // Every value equal: no evidence of any difference.
    return { ...base, z: 0, p: 1, method: 'asymptotic' };
  }
  const cc = (opts.continuity ?? true) ? 0.5 : 0;
  const dev = Math.max(0, Math.abs(u1 - mu) - cc);
  const z = (Math.sign(u1 - mu) * dev) / Math.sqrt(variance);
  return { ...base, z, p: twoSidedP(z), method: 'asymptotic' };
}

/**
 * Two-sided exact p = min(1, 2 P(U <= u)) under H0 (every assignment of the
 * n1 + n2 ranks to the two samples equally likely).
 */
function exactTwoSidedP(n1: number, n2: number, u: number): number {
  const counts = uCounts(n1, n2);
  let total = 0;
  for (const c of counts) total += c;
  let tail = 0;
  const k = Math.floor(u + 1e-9);
  for (let i = 0; i <= k && i < counts.length; i++) tail += counts[i] as number;
  return Math.min(1, (2 * tail) / total);
}

/**
 * counts[k] = number of rank assignments with U = k, i.e. the coefficients of
 * the Gaussian binomial [n1+n2 choose n1]_q = prod_{i=1..n1} (1 - q^(n2+i)) / (1 - q^i).
 * Multiplying by (1 - q^m) and dividing by (1 - q^i) are each one pass, so this
 * costs O(n1 * n1 * n2). The low coefficients (the tail we sum) only depend on
 * lower ones and stay exact integers; large middle ones round like any double.
 */
export function uCounts(n1: number, n2: number): Float64Array {
  const len = n1 * n2 + 1;
  const c = new Float64Array(len);
  c[0] = 1;
  for (let i = 1; i <= n1; i++) {
    const m = n2 + i;
    for (let k = len - 1; k >= m; k--) c[k] = (c[k] as number) - (c[k - m] as number);
    for (let k = i; k < len; k++) c[k] = (c[k] as number) + (c[k - i] as number);
  }
  return c;
}
