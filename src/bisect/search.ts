/**
 * Where a bisection looks next, from what its steps said (pure; the state is
 * in the database, bisect/state.ts). The commits are the first-parent chain
 * after good up to bad, oldest first (`git rev-list --first-parent --reverse
 * good..bad`), so position n-1 is bad and -1 stands for good.
 *
 * As `git bisect` does: the first slower commit lies after the last good
 * position and at or before the first bad one; the next commit to measure is
 * the one nearest the middle of that range (the lower one on a tie). A
 * skipped commit (it does not build, or cannot be told) is passed over for
 * its nearest neighbour, as `git bisect skip` does; when only skipped commits
 * are left between good and bad, the first slower commit is one of them or
 * the bad one, and the search says so rather than guess.
 */
export type StepStatus = 'good' | 'bad' | 'skip';

export type NextStep =
  | { kind: 'measure'; position: number; left: number }
  | { kind: 'found'; position: number }
  | { kind: 'ambiguous'; positions: number[] };

/** `known`: position → what its step said. `n`: the number of commits (bad is n - 1). */
export function nextStep(n: number, known: ReadonlyMap<number, StepStatus>): NextStep {
  let hi = n - 1;
  for (const [p, s] of known) if (s === 'bad' && p < hi && p >= 0) hi = p;
  let lo = -1;
  for (const [p, s] of known) if (s === 'good' && p > lo && p < hi) lo = p;
  const open: number[] = [];
  const skipped: number[] = [];
  for (let p = lo + 1; p < hi; p++) {
    if (known.get(p) === 'skip') skipped.push(p);
    else if (!known.has(p)) open.push(p);
  }
  if (open.length === 0) return skipped.length === 0 ? { kind: 'found', position: hi } : { kind: 'ambiguous', positions: [...skipped, hi] };
  const mid = Math.floor((lo + hi) / 2);
  let best = open[0]!;
  for (const p of open) if (Math.abs(p - mid) < Math.abs(best - mid)) best = p;
  return { kind: 'measure', position: best, left: open.length };
}

/** Steps a bisection of n commits takes at most when nothing is skipped: ceil(log2(n)). */
export function expectedSteps(n: number): number {
  return n <= 1 ? 0 : Math.ceil(Math.log2(n));
}
