/**
 * Comparing across sweeps (`results compare --sweep A --against B`, or by
 * label: `--label X --against-label Y`): the same points measured in two
 * sweeps, or two sets of sweeps, compared arm by arm with the one rule of
 * results/compare.ts. Each side becomes a "build" of one merged result set
 * and the other side is the baseline build, so a variant in A is compared
 * with the same variant at the same point and environment in B. A sweep with
 * several builds keeps them apart inside its side (`base/fused`): arms are
 * matched by variant, and by build name where a sweep has several.
 * Runs of different sweeps never pair: the comparison is unpaired.
 */
import type { Db } from '../db/client.js';
import { listSweeps } from '../db/sweeps.js';
import { UsageError } from '../errors.js';
import { armKey, labelGroups, loadSweepResults, type LoadOptions, type PointGroup, type SweepResults } from './load.js';

export interface Side {
  /** How the side is named in the output: a sweep id, or a label. */
  tag: string;
  results: SweepResults[];
}

/** The sweeps that carry a label, newest first; refuses a label no sweep has. */
export async function sweepsByLabel(db: Db, label: string, opts: LoadOptions = {}): Promise<SweepResults[]> {
  const sweeps = await listSweeps(db, { label });
  if (sweeps.length === 0) throw new UsageError(`--label ${label}: no sweep has this label (moefarm sweep list shows the labels; sweep submit --label sets one)`);
  return Promise.all(sweeps.map((s) => loadSweepResults(db, s.id, opts)));
}

/**
 * One result set from one side (its sweeps pooled: the same point and environment in two sweeps is one
 * group), or from two sides, each side a build named by its tag and `against` the baseline build.
 */
export function mergeSides(side: Side, against: Side | null): SweepResults {
  const groups = new Map<string, PointGroup>();
  const add = (r: SweepResults, tag: string | null) => {
    const several = r.builds.length > 1;
    for (const g of r.groups) {
      let m = groups.get(g.key);
      if (!m) {
        m = { ...g, arms: new Map() };
        groups.set(g.key, m);
      }
      for (const arm of g.arms.values()) {
        const build = tag ?? arm.build;
        const variant = tag !== null && several ? `${arm.build}/${arm.variant}` : arm.variant;
        const k = armKey(build, variant);
        const into = m.arms.get(k) ?? { build, variant, baseVariant: arm.baseVariant, tune: arm.tune, runs: [] };
        into.runs.push(...arm.runs.map((run) => ({ ...run, build })));
        m.arms.set(k, into);
      }
    }
  };
  const two = against !== null;
  for (const r of side.results) add(r, two ? side.tag : null);
  for (const r of against?.results ?? []) add(r, against!.tag);
  const list = [...groups.values()];
  // Labels name only what varies: what varies differs once sweeps are merged.
  labelGroups(list);
  const all = [...side.results, ...(against?.results ?? [])];
  const failures: Record<string, number> = {};
  for (const r of all) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
  const single = all.length === 1 ? all[0]! : null;
  return {
    sweepId: two ? `${side.tag} against ${against!.tag}` : single?.sweepId ?? side.tag,
    name: single?.name ?? [...new Set(all.map((r) => r.name))].join(', '),
    baselineFromSpec: two ? { by: 'build', name: against!.tag } : single?.baselineFromSpec ?? null,
    builds: two ? [against!.tag, side.tag] : [...new Set(all.flatMap((r) => r.builds))],
    groups: list,
    failures,
    queued: all.reduce((n, r) => n + r.queued, 0),
  };
}
