/**
 * Welch's t-test on the log of each run's median: the run-level test of an
 * unpaired comparison (results/compare.ts says why it is asked). Log, so a
 * run slowed by a factor counts the same at any latency; its false-alarm rate
 * is alpha when run medians are roughly log-normal, whatever the number of
 * samples per run.
 */
import { studentTwoSidedP } from './studentT.js';

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
