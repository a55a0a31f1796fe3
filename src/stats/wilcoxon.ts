import { StatsInputError } from './errors.js';
import { twoSidedP } from './normal.js';
import { rankWithTies } from './ranks.js';
import { assertSamples } from './validate.js';

/**
 * Wilcoxon signed-rank test of paired differences: are they centred on 0?
 * The farm uses it on per-round log ratios of two variants that were
 * interleaved in rounds, so slow drift (clocks, temperature) that hits both
 * variants of a round cancels out of the test.
 */

/** Exact p-values are used (method 'auto') with no ties among |d| and at most this many non-zero differences. */
export const WILCOXON_EXACT_MAX_N = 50;

export interface WilcoxonOptions {
  /** 'auto' (default): exact when |d| has no ties and n <= WILCOXON_EXACT_MAX_N. */
  method?: 'auto' | 'exact' | 'asymptotic';
  /** Continuity correction of 0.5 in the normal approximation. Default true. */
  continuity?: boolean;
}

export interface WilcoxonResult {
  /** Non-zero differences used (zeros are dropped: Wilcoxon's original convention, scipy's default). */
  n: number;
  zeros: number;
  /** Sum of the ranks of |d| over positive differences. */
  wPlus: number;
  wMinus: number;
  /** min(wPlus, wMinus), the statistic tables list. */
  t: number;
  z: number | null;
  /** Two-sided p-value. */
  p: number;
  method: 'exact' | 'asymptotic';
  ties: boolean;
}

export function wilcoxonSignedRank(diffs: readonly number[], opts: WilcoxonOptions = {}): WilcoxonResult {
  assertSamples('wilcoxonSignedRank: diffs', diffs);
  const nz = diffs.filter((d) => d !== 0);
  const zeros = diffs.length - nz.length;
  const n = nz.length;
  if (n === 0) {
    return { n, zeros, wPlus: 0, wMinus: 0, t: 0, z: 0, p: 1, method: 'asymptotic', ties: false };
  }
  const { ranks, tieTerm } = rankWithTies(nz.map(Math.abs));
  let wPlus = 0;
  for (let i = 0; i < n; i++) if ((nz[i] as number) > 0) wPlus += ranks[i] as number;
  const total = (n * (n + 1)) / 2;
  const wMinus = total - wPlus;
  const t = Math.min(wPlus, wMinus);
  const ties = tieTerm > 0;
  const base = { n, zeros, wPlus, wMinus, t, ties };

  const method = opts.method ?? 'auto';
  if (method === 'exact' && ties) {
    throw new StatsInputError('wilcoxonSignedRank: the exact method needs |differences| without ties; use "asymptotic"');
  }
  if (method === 'exact' || (method === 'auto' && !ties && n <= WILCOXON_EXACT_MAX_N)) {
    return { ...base, z: null, p: exactTwoSidedP(n, t), method: 'exact' };
  }
  const mu = total / 2;
  const variance = (n * (n + 1) * (2 * n + 1)) / 24 - tieTerm / 48;
  if (variance <= 0) return { ...base, z: 0, p: 1, method: 'asymptotic' };
  const cc = (opts.continuity ?? true) ? 0.5 : 0;
  const dev = Math.max(0, Math.abs(wPlus - mu) - cc);
  const z = (Math.sign(wPlus - mu) * dev) / Math.sqrt(variance);
  return { ...base, z, p: twoSidedP(z), method: 'asymptotic' };
}

/**
 * Under H0 each of the 2^n sign patterns is equally likely; counts[s] is the
 * number of subsets of {1..n} summing to s (subset-sum DP, exact in doubles up
 * to n = 52 because every count is <= 2^n).
 */
function exactTwoSidedP(n: number, t: number): number {
  const max = (n * (n + 1)) / 2;
  const counts = new Float64Array(max + 1);
  counts[0] = 1;
  for (let r = 1; r <= n; r++) {
    for (let s = max; s >= r; s--) counts[s] = (counts[s] as number) + (counts[s - r] as number);
  }
  let tail = 0;
  const k = Math.floor(t + 1e-9);
  for (let s = 0; s <= k; s++) tail += counts[s] as number;
  return Math.min(1, (2 * tail) / 2 ** n);
}

/** Smallest two-sided p the exact test can give with n pairs: 2 / 2^n (n = 8 is the first to go below 0.01). */
export function wilcoxonMinP(n: number): number {
  return Math.min(1, 2 / 2 ** n);
}
