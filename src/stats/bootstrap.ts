import { StatsInputError } from './errors.js';
import { medianSorted, quantileSorted, sortedCopy } from './quantile.js';
import { betaDraw, mulberry32 } from './rng.js';
import type { Rng } from './rng.js';
import { assertPositive } from './validate.js';

/**
 * Percentile-bootstrap confidence intervals for speedups. Latency
 * distributions are skewed and often multimodal, so no formula for the
 * standard error of a median ratio is trustworthy; resampling is.
 */

export interface BootstrapOptions {
  /** Number of resamples. Default 2000 (Efron and Tibshirani ask for >= 1000 for percentile intervals; each costs O(1)). */
  resamples?: number;
  /** Two-sided confidence level. Default 0.95. */
  confidence?: number;
  /** PRNG seed; the same inputs and seed always give the same interval. Default 1. */
  seed?: number;
}

export const BOOTSTRAP_DEFAULTS = { resamples: 2000, confidence: 0.95, seed: 1 } as const;

export interface BootstrapCI {
  /** The statistic on the original data. */
  estimate: number;
  lo: number;
  hi: number;
  resamples: number;
  confidence: number;
  seed: number;
}

function resolve(opts: BootstrapOptions): Required<BootstrapOptions> {
  const r = { ...BOOTSTRAP_DEFAULTS, ...opts };
  if (!Number.isInteger(r.resamples) || r.resamples < 100) {
    throw new StatsInputError(`bootstrap: resamples must be an integer >= 100, got ${r.resamples}`);
  }
  if (!(r.confidence > 0 && r.confidence < 1)) {
    throw new StatsInputError(`bootstrap: confidence must be in (0, 1), got ${r.confidence}`);
  }
  return r;
}

/**
 * Median of a with-replacement resample of `sorted`, drawn in O(1) instead of
 * O(n). Resampling n values = drawing n indices floor(n U_i) with U_i uniform;
 * floor is monotone, so the k-th smallest drawn index is floor(n U_(k)), and
 * the k-th order statistic of n uniforms is Beta(k, n + 1 - k). The next one
 * up is U_(k) + (1 - U_(k)) (1 - V^(1/(n-k))): the minimum of the n - k
 * uniforms above U_(k). So the resample's (type-7) median comes from one Beta
 * and one uniform draw, with exactly the distribution of the naive resample,
 * sort, take-the-middle bootstrap (test/stats/bootstrap.test.ts checks it
 * against exact probabilities). Measured: 2 x 100k samples, 2000 resamples,
 * 7.9 s with O(n) resampling; a few ms this way.
 */
export function resampledMedian(sorted: Float64Array, rng: Rng): number {
  const n = sorted.length;
  if (n === 1) return sorted[0] as number;
  const k = Math.floor((n - 1) / 2) + 1; // 1-based rank of the lower middle
  const uk = betaDraw(rng, k, n + 1 - k);
  const lowIdx = Math.min(n - 1, Math.floor(uk * n));
  const low = sorted[lowIdx] as number;
  if (n % 2 === 1) return low;
  const next = uk + (1 - uk) * (1 - Math.pow(rng(), 1 / (n - k)));
  return (low + (sorted[Math.min(n - 1, Math.floor(next * n))] as number)) / 2;
}

function percentileInterval(stats: Float64Array, confidence: number): [number, number] {
  stats.sort();
  const tail = (1 - confidence) / 2;
  return [quantileSorted(stats, tail), quantileSorted(stats, 1 - tail)];
}

/**
 * CI of speedup = median(baseline) / median(candidate) (> 1: candidate is
 * faster), resampling each sample independently.
 */
export function bootstrapMedianRatio(
  baseline: readonly number[],
  candidate: readonly number[],
  opts: BootstrapOptions = {},
): BootstrapCI {
  assertPositive('bootstrapMedianRatio: baseline', baseline);
  assertPositive('bootstrapMedianRatio: candidate', candidate);
  const o = resolve(opts);
  const b = sortedCopy(baseline);
  const c = sortedCopy(candidate);
  const rng = mulberry32(o.seed);
  const stats = new Float64Array(o.resamples);
  for (let r = 0; r < o.resamples; r++) {
    stats[r] = resampledMedian(b, rng) / resampledMedian(c, rng);
  }
  const [lo, hi] = percentileInterval(stats, o.confidence);
  return { estimate: medianSorted(b) / medianSorted(c), lo, hi, ...o };
}

/**
 * Paired version for variants interleaved in rounds. Input: the per-round
 * medians of each variant (same length, round i of one paired with round i of
 * the other). The statistic is the median over rounds of baseline_i /
 * candidate_i: the ratio is taken within a round, so drift that slows both
 * variants of a round cancels. Round indices are resampled with replacement,
 * which (as the statistic depends only on the multiset of per-round ratios)
 * is the same as resampling the ratios.
 */
export function bootstrapPairedMedianRatio(
  baseRoundMedians: readonly number[],
  candRoundMedians: readonly number[],
  opts: BootstrapOptions = {},
): BootstrapCI {
  assertPositive('bootstrapPairedMedianRatio: baseline', baseRoundMedians);
  assertPositive('bootstrapPairedMedianRatio: candidate', candRoundMedians);
  if (baseRoundMedians.length !== candRoundMedians.length) {
    throw new StatsInputError(
      `bootstrapPairedMedianRatio: ${baseRoundMedians.length} baseline rounds but ${candRoundMedians.length} candidate rounds; pairs need equal counts`,
    );
  }
  const o = resolve(opts);
  const ratios = sortedCopy(baseRoundMedians.map((b, i) => b / (candRoundMedians[i] as number)));
  const rng = mulberry32(o.seed);
  const stats = new Float64Array(o.resamples);
  for (let r = 0; r < o.resamples; r++) stats[r] = resampledMedian(ratios, rng);
  const [lo, hi] = percentileInterval(stats, o.confidence);
  return { estimate: medianSorted(ratios), lo, hi, ...o };
}
