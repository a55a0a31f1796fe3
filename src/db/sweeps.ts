/**
 * Finding recorded sweeps: by label and by when they were submitted, with
 * how their runs stand. Shared by `sweep list`, `db prune` and
 * `results compare --label`.
 */
import type { Db } from './client.js';

export interface SweepFilter {
  /** Only sweeps with this id. */
  id?: string;
  label?: string;
  /** Submitted at or after. */
  since?: Date;
  /** Submitted before (exclusive). */
  until?: Date;
}

export interface SweepSummary {
  id: string;
  name: string;
  label: string | null;
  pool: string;
  createdAt: Date;
  /** Planned runs (the sweep file's), and every run recorded (repetitions and retries add to it). */
  planned: number;
  runs: number;
  done: number;
  /** Runs that ended without a result, cancelled ones apart. */
  failed: number;
  cancelled: number;
  queued: number;
  byStatus: Record<string, number>;
}

export function sweepWhere(f: SweepFilter): object {
  return {
    ...(f.id !== undefined ? { id: f.id } : {}),
    ...(f.label !== undefined ? { label: f.label } : {}),
    ...(f.since !== undefined || f.until !== undefined
      ? { createdAt: { ...(f.since !== undefined ? { gte: f.since } : {}), ...(f.until !== undefined ? { lt: f.until } : {}) } }
      : {}),
  };
}

/** Newest first. */
export async function listSweeps(db: Db, f: SweepFilter, limit?: number): Promise<SweepSummary[]> {
  const sweeps = await db.sweep.findMany({
    where: sweepWhere(f),
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
    select: { id: true, name: true, label: true, pool: true, createdAt: true, runs: true },
    ...(limit !== undefined ? { take: limit } : {}),
  });
  if (sweeps.length === 0) return [];
  const counts = await db.run.groupBy({ by: ['sweepId', 'status'], where: { sweepId: { in: sweeps.map((s) => s.id) } }, _count: { _all: true } });
  const byId = new Map<string, Record<string, number>>();
  for (const c of counts) {
    const m = byId.get(c.sweepId) ?? {};
    m[c.status] = c._count._all;
    byId.set(c.sweepId, m);
  }
  return sweeps.map((s) => {
    const byStatus = byId.get(s.id) ?? {};
    const n = (k: string) => byStatus[k] ?? 0;
    const runs = Object.values(byStatus).reduce((a, b) => a + b, 0);
    return {
      id: s.id,
      name: s.name,
      label: s.label,
      pool: s.pool,
      createdAt: s.createdAt,
      planned: s.runs,
      runs,
      done: n('done'),
      cancelled: n('cancelled'),
      queued: n('queued'),
      failed: runs - n('done') - n('cancelled') - n('queued'),
      byStatus,
    };
  });
}
