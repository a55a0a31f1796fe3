import { BOOTSTRAP_DEFAULTS, bootstrapMedianRatio, bootstrapPairedMedianRatio } from './bootstrap.js';
import type { BootstrapOptions } from './bootstrap.js';
import { StatsInputError } from './errors.js';
import { pEquals } from './format.js';
import { ksTest } from './ks.js';
import { mannWhitney } from './mannWhitney.js';
import { median } from './quantile.js';
import { assertPositive } from './validate.js';
import { wilcoxonMinP, wilcoxonSignedRank } from './wilcoxon.js';

export { summarize } from './summary.js';
export type { Summary } from './summary.js';

/**
 * "Is the candidate faster than the baseline?" as one of four words, with the
 * numbers behind it. The rule (all thresholds below are options):
 *
 *   FASTER  the test rejects "no difference" at alpha, the CI of the speedup
 *           lies entirely above 1, and the speedup itself is beyond +band;
 *   SLOWER  the mirror image (significant, CI below 1, speedup below -band);
 *   SAME    the CI lies entirely inside [1 - band, 1 + band]: whatever the
 *           difference is, it is smaller than we care about (even when the
 *           test calls a 0.5% shift significant, as it will with many samples);
 *   UNSURE  anything else: too few samples, or too much noise to tell.
 *
 * Speedup = baseline latency / candidate latency, so > 1 means faster.
 * Requiring both the test and the CI guards against either one's failure
 * mode (a rank test reacting to a shape change; a bootstrap CI that is too
 * narrow on tiny samples).
 */

/** Significance level of the rank test. 0.01, not 0.05: a farm runs hundreds of comparisons a day. */
export const DEFAULT_ALPHA = 0.01;
/** Practical-equivalence band on the speedup: +-2% is below run-to-run noise of a GPU kernel after clock changes. */
export const DEFAULT_EQUIVALENCE_BAND = 0.02;
/** Fewer samples than this per variant (unpaired) gives UNSURE without testing. */
export const DEFAULT_MIN_SAMPLES = 5;
/** Fewer rounds than this (paired) gives UNSURE without testing. */
export const DEFAULT_MIN_ROUNDS = 3;

export type Verdict = 'FASTER' | 'SLOWER' | 'SAME' | 'UNSURE';

export interface CompareOptions {
  /** Significance level of the test. Default DEFAULT_ALPHA (0.01). */
  alpha?: number;
  /** Half-width of the equivalence band as a fraction. Default DEFAULT_EQUIVALENCE_BAND (0.02). */
  band?: number;
  /** Minimum samples per variant (compareSamples). Default DEFAULT_MIN_SAMPLES (5). */
  minSamples?: number;
  /** Minimum rounds (comparePaired). Default DEFAULT_MIN_ROUNDS (3). */
  minRounds?: number;
  /** Bootstrap settings; defaults BOOTSTRAP_DEFAULTS (2000 resamples, 95%, seed 1). */
  bootstrap?: BootstrapOptions;
}

export interface Comparison {
  /** 'unpaired' (compareSamples) or 'paired' (comparePaired). */
  mode: 'unpaired' | 'paired';
  /** Rounds compared (paired), null when unpaired. */
  rounds: number | null;
  n_base: number;
  n_cand: number;
  /** Medians of all samples of each variant (pooled over rounds when paired). */
  median_base: number;
  median_cand: number;
  /** Unpaired: median_base / median_cand. Paired: median over rounds of the per-round ratio. */
  speedup: number;
  /** Bootstrap CI of `speedup` at the configured confidence. */
  ci: [number, number];
  /** p of the test the verdict used: Mann-Whitney (unpaired) or Wilcoxon signed-rank (paired). */
  p: number;
  /** Mann-Whitney U on all samples (pooled when paired; informational there, since rounds break independence). */
  p_mw: number;
  /** Two-sample Kolmogorov-Smirnov on all samples; flags shape changes the rank test misses. */
  p_ks: number;
  /** Wilcoxon signed-rank on per-round log ratios; null when unpaired. */
  p_wilcoxon: number | null;
  /** Cliff's delta of baseline vs candidate: +1 means every candidate sample beat every baseline sample. */
  cliffs_delta: number;
  verdict: Verdict;
  reason: string;
}

interface Resolved {
  alpha: number;
  band: number;
  minSamples: number;
  minRounds: number;
  bootstrap: Required<BootstrapOptions>;
}

function resolve(opts: CompareOptions): Resolved {
  const r: Resolved = {
    alpha: opts.alpha ?? DEFAULT_ALPHA,
    band: opts.band ?? DEFAULT_EQUIVALENCE_BAND,
    minSamples: opts.minSamples ?? DEFAULT_MIN_SAMPLES,
    minRounds: opts.minRounds ?? DEFAULT_MIN_ROUNDS,
    bootstrap: { ...BOOTSTRAP_DEFAULTS, ...opts.bootstrap },
  };
  if (!(r.alpha > 0 && r.alpha < 1)) throw new StatsInputError(`compare: alpha must be in (0, 1), got ${r.alpha}`);
  if (!(r.band >= 0 && r.band < 1)) throw new StatsInputError(`compare: band must be in [0, 1), got ${r.band}`);
  return r;
}

const pct = (x: number): string => `${+(x * 100).toFixed(2)}%`;
const fx = (x: number): string => x.toFixed(3);

/** One line for the top of a report, so every verdict can be read against its rule. */
export function describeThresholds(opts: CompareOptions = {}, mode: 'unpaired' | 'paired' = 'unpaired'): string {
  const r = resolve(opts);
  const conf = pct(r.bootstrap.confidence);
  return mode === 'unpaired'
    ? `verdict: alpha=${r.alpha} (Mann-Whitney U), equivalence band ±${pct(r.band)}, bootstrap ${conf} CI of median ratio, ${r.bootstrap.resamples} resamples`
    : `verdict: alpha=${r.alpha} (Wilcoxon signed-rank on per-round medians), equivalence band ±${pct(r.band)}, paired bootstrap ${conf} CI of per-round median ratio, ${r.bootstrap.resamples} resamples`;
}

/** What the verdict rule (`decide`) is given: one test's p, the speedup and its CI, and the thresholds. */
export interface DecideInput {
  /** The test behind `p`, named in the reason ("Mann-Whitney", "Wilcoxon"); null writes a bare "p=". */
  test: string | null;
  p: number;
  /** Baseline latency / candidate latency: above 1 means faster. */
  speedup: number;
  /** CI of the speedup at `confidence`. */
  ci: readonly [number, number];
  alpha: number;
  band: number;
  confidence: number;
  /** What more of would settle an UNSURE: 'samples' (one comparison) or 'repetitions' (runs of a sweep). */
  more: 'samples' | 'repetitions';
}

/**
 * The verdict rule, the one place it is written (the comment at the top of
 * this file states it): stats compareSamples / comparePaired and the sweep
 * comparison of results/compare.ts both end here.
 */
export function decide(i: DecideInput): { verdict: Verdict; reason: string } {
  const [lo, hi] = i.ci;
  const sig = i.p < i.alpha;
  const ciText = `${pct(i.confidence)} CI [${fx(lo)}, ${fx(hi)}]`;
  const pText = i.test === null ? pEquals(i.p) : `${i.test} ${pEquals(i.p)}`;
  const bandText = `±${pct(i.band)} band`;
  if (sig && lo > 1 && i.speedup > 1 + i.band) {
    return { verdict: 'FASTER', reason: `${pText} < ${i.alpha}; speedup ${fx(i.speedup)}x, ${ciText} above 1 and beyond the ${bandText}` };
  }
  if (sig && hi < 1 && i.speedup < 1 - i.band) {
    return { verdict: 'SLOWER', reason: `${pText} < ${i.alpha}; speedup ${fx(i.speedup)}x, ${ciText} below 1 and beyond the ${bandText}` };
  }
  if (lo >= 1 - i.band && hi <= 1 + i.band) {
    const note = sig ? ` (a shift is detectable, ${pText}, but it is smaller than the band)` : '';
    return { verdict: 'SAME', reason: `speedup ${fx(i.speedup)}x, ${ciText} inside the ${bandText}${note}` };
  }
  let why: string;
  if (!sig) why = `${pText} >= ${i.alpha} and ${ciText} is wider than the ${bandText}: more ${i.more} needed`;
  else if (lo <= 1 && hi >= 1) why = `${pText} < ${i.alpha} but ${ciText} includes 1`;
  else why = `${pText} < ${i.alpha} and ${ciText} excludes 1, but the speedup ${fx(i.speedup)}x is within the ${bandText} and the CI is not`;
  return { verdict: 'UNSURE', reason: why };
}

/** decide() with the thresholds of compareSamples / comparePaired. */
function decideWith(test: string, p: number, speedup: number, ci: [number, number], r: Resolved): { verdict: Verdict; reason: string } {
  return decide({ test, p, speedup, ci, alpha: r.alpha, band: r.band, confidence: r.bootstrap.confidence, more: 'samples' });
}

/**
 * KS also reacts to a plain shift, so it only adds information when the rank
 * test saw no shift: then a small KS p means the shape changed (a new mode, a
 * wider spread) with the centre in place, which a reader should know.
 */
export function shapeNote(pMw: number, pKs: number, alpha: number): string {
  return pMw >= alpha && pKs < alpha ? `; distributions differ in shape (KS ${pEquals(pKs)})` : '';
}

/**
 * Compare two independent samples of latencies (e.g. two variants run one
 * after the other). Latencies must be positive.
 */
export function compareSamples(
  baseline: readonly number[],
  candidate: readonly number[],
  opts: CompareOptions = {},
): Comparison {
  assertPositive('compareSamples: baseline', baseline);
  assertPositive('compareSamples: candidate', candidate);
  const r = resolve(opts);
  const mw = mannWhitney(baseline, candidate);
  const ks = ksTest(baseline, candidate);
  const boot = bootstrapMedianRatio(baseline, candidate, r.bootstrap);
  const base = {
    mode: 'unpaired' as const,
    rounds: null,
    n_base: baseline.length,
    n_cand: candidate.length,
    median_base: median(baseline),
    median_cand: median(candidate),
    speedup: boot.estimate,
    ci: [boot.lo, boot.hi] as [number, number],
    p: mw.p,
    p_mw: mw.p,
    p_ks: ks.p,
    p_wilcoxon: null,
    cliffs_delta: mw.cliffsDelta,
  };
  const fewest = Math.min(baseline.length, candidate.length);
  if (fewest < r.minSamples) {
    return { ...base, verdict: 'UNSURE', reason: `too few samples (${fewest} < ${r.minSamples}) for a verdict` };
  }
  const d = decideWith('Mann-Whitney', mw.p, boot.estimate, base.ci, r);
  return { ...base, verdict: d.verdict, reason: d.reason + shapeNote(mw.p, ks.p, r.alpha) };
}

/**
 * Compare two variants that were interleaved in rounds: roundsBase[i] and
 * roundsCand[i] are the samples of round i. Each round is reduced to its
 * median; the test is Wilcoxon signed-rank on log(base_i / cand_i) (log so a
 * round at a lower clock, slowing both by the same factor, weighs the same)
 * and the CI is the paired bootstrap of the median per-round ratio.
 */
export function comparePaired(
  roundsBase: readonly (readonly number[])[],
  roundsCand: readonly (readonly number[])[],
  opts: CompareOptions = {},
): Comparison {
  if (roundsBase.length !== roundsCand.length || roundsBase.length === 0) {
    throw new StatsInputError(
      `comparePaired: need the same non-zero number of rounds, got ${roundsBase.length} baseline and ${roundsCand.length} candidate`,
    );
  }
  roundsBase.forEach((s, i) => assertPositive(`comparePaired: roundsBase[${i}]`, s));
  roundsCand.forEach((s, i) => assertPositive(`comparePaired: roundsCand[${i}]`, s));
  const r = resolve(opts);
  const medB = roundsBase.map((s) => median(s));
  const medC = roundsCand.map((s) => median(s));
  const pooledB = roundsBase.flat();
  const pooledC = roundsCand.flat();
  const w = wilcoxonSignedRank(medB.map((b, i) => Math.log(b / (medC[i] as number))));
  const mw = mannWhitney(pooledB, pooledC);
  const ks = ksTest(pooledB, pooledC);
  const boot = bootstrapPairedMedianRatio(medB, medC, r.bootstrap);
  const base = {
    mode: 'paired' as const,
    rounds: roundsBase.length,
    n_base: pooledB.length,
    n_cand: pooledC.length,
    median_base: median(pooledB),
    median_cand: median(pooledC),
    speedup: boot.estimate,
    ci: [boot.lo, boot.hi] as [number, number],
    p: w.p,
    p_mw: mw.p,
    p_ks: ks.p,
    p_wilcoxon: w.p,
    cliffs_delta: mw.cliffsDelta,
  };
  const rounds = roundsBase.length;
  if (rounds < r.minRounds) {
    return { ...base, verdict: 'UNSURE', reason: `too few rounds (${rounds} < ${r.minRounds}) for a verdict` };
  }
  const d = decideWith('Wilcoxon', w.p, boot.estimate, base.ci, r);
  let reason = d.reason + shapeNote(mw.p, ks.p, r.alpha);
  if (d.verdict === 'UNSURE' && wilcoxonMinP(w.n) >= r.alpha) {
    reason += `; with ${w.n} non-tied rounds the signed-rank test cannot reach p < ${r.alpha}: run more rounds`;
  }
  return { ...base, verdict: d.verdict, reason };
}
