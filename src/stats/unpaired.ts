/**
 * The unpaired run-level test of compare's verdict (results/compare.ts verdictOf) and of history's steps
 * (results/history.ts): both the pooled samples and the run medians must reject.
 */
import { mannWhitney } from './mannWhitney.js';
import { median } from './quantile.js';
import { welchLogTest } from './welch.js';

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
 * Welch has the power with 2-4 well-behaved runs a side; Mann-Whitney on the run medians stays valid when a
 * few runs are far off (a shared machine's busy moments). Either may decide; Bonferroni (x2) keeps alpha.
 * Needs at least 2 runs a side.
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
