/**
 * Deleting sweeps with their runs and results (`db prune`). A sweep with a
 * run still waiting for an outcome is never deleted: its job may still run,
 * and the collector would then record the run of a sweep that is gone (as an
 * unplanned sweep). Cancel it first. Builds, build sources and workers are
 * shared between sweeps and stay.
 */
import type { Db } from './client.js';
import { sweepWhere, type SweepFilter } from './sweeps.js';

export interface PruneReport {
  dryRun: boolean;
  sweeps: Array<{ id: string; name: string; label: string | null; createdAt: string; runs: number; results: number }>;
  runs: number;
  results: number;
  /** Matching sweeps left alone because some run has no outcome yet. */
  unfinished: Array<{ id: string; queued: number }>;
}

export async function pruneSweeps(db: Db, filter: SweepFilter, dryRun: boolean): Promise<PruneReport> {
  const sweeps = await db.sweep.findMany({ where: sweepWhere(filter), select: { id: true, name: true, label: true, createdAt: true }, orderBy: { createdAt: 'asc' } });
  const ids = sweeps.map((s) => s.id);
  const open = ids.length ? await db.run.groupBy({ by: ['sweepId'], where: { sweepId: { in: ids }, status: 'queued' }, _count: { _all: true } }) : [];
  const unfinished = open.map((o) => ({ id: o.sweepId, queued: o._count._all }));
  const skip = new Set(unfinished.map((u) => u.id));
  const doomed = sweeps.filter((s) => !skip.has(s.id));
  const doomedIds = doomed.map((s) => s.id);
  const runsBy = new Map((doomedIds.length ? await db.run.groupBy({ by: ['sweepId'], where: { sweepId: { in: doomedIds } }, _count: { _all: true } }) : []).map((g) => [g.sweepId, g._count._all]));
  const resultsBy = new Map<string, number>();
  for (const id of doomedIds) resultsBy.set(id, await db.result.count({ where: { run: { sweepId: id } } }));
  const report: PruneReport = {
    dryRun,
    sweeps: doomed.map((s) => ({ id: s.id, name: s.name, label: s.label, createdAt: s.createdAt.toISOString(), runs: runsBy.get(s.id) ?? 0, results: resultsBy.get(s.id) ?? 0 })),
    runs: [...runsBy.values()].reduce((a, b) => a + b, 0),
    results: [...resultsBy.values()].reduce((a, b) => a + b, 0),
    unfinished,
  };
  if (dryRun || doomedIds.length === 0) return report;
  // Children first (the foreign keys restrict), all or nothing; a run that gained an outcome meanwhile changes nothing here.
  await db.$transaction(
    async (tx) => {
      for (const id of doomedIds) {
        if ((await tx.run.count({ where: { sweepId: id, status: 'queued' } })) > 0) continue;
        await tx.result.deleteMany({ where: { run: { sweepId: id } } });
        await tx.run.deleteMany({ where: { sweepId: id } });
        await tx.sweep.delete({ where: { id } });
      }
    },
    { timeout: 120_000 },
  );
  return report;
}
