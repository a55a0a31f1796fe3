/**
 * One step of a bisection: the user's sweep turned into a paired A/B of one
 * commit against the good one (`builds: {good: {git: GOOD}, commit: {git:
 * SHA}}`, `baseline: {build: good}`, interleaved, so both binaries run
 * alternately in each job and drift cancels), measured until confident, and
 * read as good, bad or skip.
 *
 * - bad: a comparison of the commit against good is SLOWER (the statistics'
 *   rule) and its latency grew by more than the threshold;
 * - skip: the commit cannot be measured: its source cannot be submitted (no
 *   variant table, a point its table refuses), it does not compile, or its
 *   runs crash; or, with `--unsure skip`, a comparison is still UNSURE after
 *   the extra repetitions;
 * - good: anything else (SAME, FASTER, SLOWER within the threshold, and by
 *   default UNSURE after the extra repetitions: not shown slower).
 */
import type { Exclude, Sweep } from '../schema/sweep.js';
import { UsageError } from '../errors.js';
import type { Comparison, CompareRow } from '../results/compare.js';
import { slowdownPct } from '../results/gate.js';
import type { SweepResults } from '../results/load.js';
import type { Plan } from '../sweep/expand.js';
import type { StepStatus } from './search.js';

export const GOOD_BUILD = 'good';
export const COMMIT_BUILD = 'commit';

export type UnsureAs = 'good' | 'skip';

/** The step's sweep: the user's points, good against `commit`, interleaved. */
export function stepSweep(base: Sweep, goodCommit: string, commit: string): Sweep {
  const { builds: _builds, source: _source, baseline: _baseline, ...rest } = base;
  const { build: _axis, ...matrix } = base.matrix;
  const flags = base.build?.flags ?? [];
  const spec = (git: string) => ({ git, ...(flags.length ? { flags: [...flags] } : {}) });
  return {
    ...rest,
    interleave: true,
    baseline: { build: GOOD_BUILD },
    builds: { [GOOD_BUILD]: spec(goodCommit), [COMMIT_BUILD]: spec(commit) },
    matrix,
    // Rules that name one of the file's own builds mean nothing here: bisect names the builds.
    exclude: base.exclude.filter((r: Exclude) => r.build === undefined),
  };
}

/**
 * `--point HASH`: the sweep narrowed to the one point (a Result.pointHash: the point with its variant) or
 * the one job group (a Run.groupHash: every variant of an interleaved point) that the hash names. The
 * points are those of a plan of the full sweep.
 */
export function narrowToPoint(sweep: Sweep, plan: Plan, hash: string, file: string): Sweep {
  if (!/^[A-Za-z0-9]{6,}$/.test(hash)) throw new UsageError(`--point: expected a point hash (6 or more letters or digits), got "${hash}"`);
  const byPoint = plan.points.filter((p) => p.hash.startsWith(hash));
  const byGroup = plan.runs.filter((r) => r.groupHash.startsWith(hash)).flatMap((r) => r.points);
  const picked = byPoint.length ? byPoint : byGroup;
  if (picked.length === 0) {
    throw new UsageError(`--point ${hash}: no point of ${file} has this hash (its points: ${[...new Set(plan.points.map((p) => p.hash))].slice(0, 8).join(', ')}${plan.points.length > 8 ? ', …' : ''})`);
  }
  const keys = new Set(picked.map((p) => JSON.stringify({ ...p.point, variant: null, build_flags: null })));
  if (keys.size > 1) throw new UsageError(`--point ${hash}: matches several points of ${file}; give more characters`);
  const p = picked[0]!.point;
  const { model: _m, shape: _s, ...axes } = sweep.matrix;
  return {
    ...sweep,
    matrix: {
      ...axes,
      backend: [p.backend],
      variant: [...new Set(picked.map((x) => x.point.variant))],
      ...(p.model !== null ? { model: [p.model] } : { shape: [{ hidden: p.hidden, inter: p.inter, experts: p.experts, topk: p.topk }] }),
      tokens: [p.tokens],
      dtype: [p.dtype],
      ...(sweep.matrix.fp8_scales !== undefined ? { fp8_scales: [p.fp8_scales ?? 'channel'] } : {}),
      warmup: [p.warmup],
      iters: [p.iters],
      ...(p.rotate !== null ? { rotate: [p.rotate] } : {}),
      cold_l2: [p.cold_l2],
      clock: [p.clock],
      power: [p.power],
    },
    exclude: [],
  };
}

export interface StepVerdict {
  status: StepStatus;
  /** The deciding comparison (the slowest of the commit's): its verdict, speedup and interval. */
  verdict: CompareRow['verdict'] | null;
  speedup: number | null;
  ciLo: number | null;
  ciHi: number | null;
  reason: string;
}

const pct = (x: number) => `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}%`;

/** Reads a measured step. `failedReason`: the reason of one run that ended without a result, if any did. */
export function classify(cmp: Comparison, results: SweepResults, opts: { thresholdPct: number; unsure: UnsureAs; failedReason: string | null }): StepVerdict {
  const failed = Object.entries(results.failures);
  const none = { verdict: null, speedup: null, ciLo: null, ciHi: null };
  if (failed.length) {
    const what = failed.map(([k, v]) => `${k} ${v}`).join(', ');
    const reason = `cannot be measured: ${what}${opts.failedReason ? ` (${opts.failedReason.split('\n')[0]!.slice(0, 200)})` : ''}`;
    return { ...none, status: 'skip', reason: failed.some(([k]) => k === 'compile-error') ? `does not build: ${reason}` : reason };
  }
  const rows = cmp.rows.filter((r) => r.build === COMMIT_BUILD && r.verdict !== 'BASELINE');
  if (rows.length === 0) return { ...none, status: 'skip', reason: 'no comparison of the commit against good came out of its sweep' };
  const worst = [...rows].sort((a, b) => (a.speedup ?? Infinity) - (b.speedup ?? Infinity))[0]!;
  const pick = (r: CompareRow) => ({ verdict: r.verdict, speedup: r.speedup, ciLo: r.ciLo, ciHi: r.ciHi });
  const where = (r: CompareRow) => (rows.length > 1 ? ` (${r.point} ${r.variant})` : '');
  const slow = rows.filter((r) => r.verdict === 'SLOWER' && (slowdownPct(r.speedup) ?? 0) > opts.thresholdPct).sort((a, b) => (a.speedup ?? 1) - (b.speedup ?? 1));
  if (slow.length) {
    const r = slow[0]!;
    return { ...pick(r), status: 'bad', reason: `SLOWER than good by ${pct(slowdownPct(r.speedup)!)}${where(r)}, beyond the ${opts.thresholdPct}% threshold` };
  }
  const unsure = rows.filter((r) => r.verdict === 'UNSURE' || r.verdict === 'NO-BASELINE');
  if (unsure.length) {
    const r = unsure[0]!;
    return opts.unsure === 'skip'
      ? { ...pick(r), status: 'skip', reason: `still ${r.verdict}${where(r)} after the extra repetitions (--unsure skip)` }
      : { ...pick(r), status: 'good', reason: `still ${r.verdict}${where(r)} after the extra repetitions: counted good, not shown slower (--unsure good)` };
  }
  const within = rows.find((r) => r.verdict === 'SLOWER');
  if (within) return { ...pick(within), status: 'good', reason: `SLOWER by ${pct(slowdownPct(within.speedup) ?? 0)}${where(within)}, within the ${opts.thresholdPct}% threshold` };
  return { ...pick(worst), status: 'good', reason: rows.map((r) => `${r.verdict}${where(r)}`).join(', ') };
}
