/**
 * Statistics at the level of runs (compare.ts also runs Mann-Whitney on the
 * run medians: Welch has the power with few runs, the rank test the
 * robustness when a few runs are far off). The samples of one run share its process,
 * its build of the caches, its clock and its neighbours on the machine, so
 * they are not independent of each other: two runs of the same binary often
 * differ by more than their within-run spread (on a shared 2-core box, by
 * 5-10%). A test on pooled samples then calls identical variants "different"
 * far more often than its alpha says. So the unpaired verdict also asks the
 * question at the level where repetitions are independent, the run:
 *
 * - Welch's t-test on the log of each run's median (log: a run slowed by a
 *   factor counts the same at any latency); its false-alarm rate is alpha
 *   when run medians are roughly log-normal, whatever the number of samples.
 * - A cluster bootstrap CI of the pooled-median ratio: runs are resampled
 *   with replacement within each variant, so run-to-run spread widens it.
 */
import { mannWhitney, median, mulberry32 } from '../stats/index.js';

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~1e-15 relative). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const y = x - 1;
  let a = c[0]!;
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the regularized incomplete beta (modified Lentz). */
function betaCf(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaCf(a, b, x)) / a : 1 - (front * betaCf(b, a, 1 - x)) / b;
}

/** Two-sided p of Student's t with df degrees of freedom (df may be fractional). */
export function studentTwoSidedP(t: number, df: number): number {
  if (!Number.isFinite(t)) return 0;
  return incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

export interface WelchResult {
  /** mean(log base) - mean(log cand): > 0 means the candidate is faster. */
  diff: number;
  t: number;
  df: number;
  p: number;
}

/** Welch's t-test on log(run medians). Needs >= 2 runs on each side. */
export function welchLogTest(base: readonly number[], cand: readonly number[]): WelchResult {
  const lb = base.map(Math.log);
  const lc = cand.map(Math.log);
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const varOf = (x: number[], m: number) => x.reduce((s, v) => s + (v - m) ** 2, 0) / (x.length - 1);
  const mb = mean(lb);
  const mc = mean(lc);
  const vb = varOf(lb, mb) / lb.length;
  const vc = varOf(lc, mc) / lc.length;
  const diff = mb - mc;
  const se2 = vb + vc;
  if (se2 === 0) return { diff, t: diff === 0 ? 0 : Infinity, df: lb.length + lc.length - 2, p: diff === 0 ? 1 : 0 };
  const t = diff / Math.sqrt(se2);
  const df = (se2 * se2) / ((vb * vb) / (lb.length - 1) + (vc * vc) / (lc.length - 1));
  return { diff, t, df, p: studentTwoSidedP(t, df) };
}

/**
 * Each run reduced to at most `m` evenly spaced order statistics, so a
 * resample costs O(pool) whatever the run length (100k-sample GPU runs).
 * The median of the thinned pool matches the pooled median to within one
 * quantile step of a run.
 */
function thin(samples: readonly number[], m: number): Float64Array {
  const s = Float64Array.from(samples).sort();
  if (s.length <= m) return s;
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) out[i] = s[Math.round((i * (s.length - 1)) / (m - 1))]!;
  return out;
}

function pooledMedian(runs: Float64Array[], pick: number[], buf: Float64Array): number {
  let n = 0;
  for (const i of pick) {
    const r = runs[i]!;
    buf.set(r, n);
    n += r.length;
  }
  const view = buf.subarray(0, n).sort();
  return n % 2 ? view[(n - 1) / 2]! : (view[n / 2 - 1]! + view[n / 2]!) / 2;
}

export interface ClusterCi {
  lo: number;
  hi: number;
  resamples: number;
}

/**
 * Percentile CI of median(pooled base) / median(pooled cand), resampling runs
 * with replacement within each variant. With k runs a side there are only
 * C(2k-1, k) distinct resamples, so with 2-3 runs it is coarse; the Welch
 * test, not this interval, is what guards the false-alarm rate.
 */
export function clusterBootstrapRatio(
  baseRuns: ReadonlyArray<readonly number[]>,
  candRuns: ReadonlyArray<readonly number[]>,
  opts: { resamples?: number; confidence?: number; seed?: number; poolCap?: number } = {},
): ClusterCi {
  const resamples = opts.resamples ?? 2000;
  const confidence = opts.confidence ?? 0.95;
  const cap = opts.poolCap ?? 1024;
  const per = (k: number) => Math.max(16, Math.floor(cap / k));
  const b = baseRuns.map((r) => thin(r, per(baseRuns.length)));
  const c = candRuns.map((r) => thin(r, per(candRuns.length)));
  // A resample picks k runs, possibly the longest one k times.
  const bufB2 = new Float64Array(Math.max(...b.map((r) => r.length)) * b.length);
  const bufC2 = new Float64Array(Math.max(...c.map((r) => r.length)) * c.length);
  const rng = mulberry32(opts.seed ?? 1);
  const stats = new Float64Array(resamples);
  const pickB = new Array<number>(b.length);
  const pickC = new Array<number>(c.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < b.length; i++) pickB[i] = Math.floor(rng() * b.length);
    for (let i = 0; i < c.length; i++) pickC[i] = Math.floor(rng() * c.length);
    stats[r] = pooledMedian(b, pickB, bufB2) / pooledMedian(c, pickC, bufC2);
  }
  stats.sort();
  const q = (p: number) => {
    const pos = (resamples - 1) * p;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return stats[lo]! + (stats[hi]! - stats[lo]!) * (pos - lo);
  };
  const tail = (1 - confidence) / 2;
  return { lo: q(tail), hi: q(1 - tail), resamples };
}

export interface UnpairedTest {
  /** Mann-Whitney U on all samples of all runs, pooled. */
  pSamples: number;
  /** Welch's t on the log run medians, and Mann-Whitney U on the run medians. */
  pWelch: number;
  pRunMedians: number;
  /** Bonferroni of the two run-median tests: min(1, 2 x min). */
  pRun: number;
  /** The larger of pSamples and pRun: what the verdict uses. */
  p: number;
}

/**
 * The unpaired test of compare's verdict (compare.ts verdictOf) and of history's steps: both the pooled
 * samples and the run medians must reject. Welch has the power with 2-4 well-behaved runs a side;
 * Mann-Whitney on the run medians stays valid when a few runs are far off (a shared machine's busy
 * moments). Either may decide; Bonferroni (x2) keeps alpha. Needs at least 2 runs a side.
 */
export function unpairedRunTest(base: ReadonlyArray<readonly number[]>, cand: ReadonlyArray<readonly number[]>): UnpairedTest {
  const pSamples = mannWhitney(base.flat(), cand.flat()).p;
  const baseMedians = base.map((r) => median(r));
  const candMedians = cand.map((r) => median(r));
  const pWelch = welchLogTest(baseMedians, candMedians).p;
  const pRunMedians = mannWhitney(baseMedians, candMedians).p;
  const pRun = Math.min(1, 2 * Math.min(pWelch, pRunMedians));
  return { pSamples, pWelch, pRunMedians, pRun, p: Math.max(pSamples, pRun) };
}
