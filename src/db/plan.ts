/**
 * The sweep's plan in the database: one Sweep row and one Run row per planned
 * run (status `queued`), written before anything is enqueued. Re-submitting
 * writes nothing new and tells which runs still need a job. The collector
 * writes the same rows into its own database from the sweep's definition
 * that travels with the jobs (queue/sweep-definition.ts), through
 * writePlanRows, when the submitter wrote another database.
 */
import { canonicalJson } from '../util/hash.js';
import { pointsJson, type Plan } from '../sweep/expand.js';
import type { SourceMeta } from '../source/describe.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BuildSource as BuildSourceModel, Run as RunModel } from '../../generated/prisma/sqlite/client/client.js';
import { insertRecords, providerOf, type Db } from './client.js';
import { DatabaseMovedError, isDatabaseUnavailable, isUniqueViolation } from './errors.js';
import type { Provider } from './target.js';

/** The name the collector gives a sweep it met with no definition (db/record.ts). */
export const UNPLANNED = '(unplanned)';

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

const CHUNK = 500;

export interface PlanWrite {
  created: number;
  existing: number;
  /** Ids of runs with no outcome yet: these may (still) need a job. */
  pending: Set<string>;
  /** Planned runs that have an outcome already, by outcome. */
  ended: Record<string, number>;
  /** The sweep's label before this submission (null: none). */
  previousLabel: string | null;
  /** The database held this sweep's plan before this write (an earlier or concurrent submission wrote it). */
  existed: boolean;
}

/**
 * `label`: stored with the sweep (sweep submit --label). A label is not part of the sweep's identity:
 * the same sweep submitted again with another label keeps its id and runs, and takes the new label.
 */
export async function recordPlan(db: Db, plan: Plan, source: string | null, label: string | null = null): Promise<PlanWrite> {
  const rows = planRowsOf(plan, source);
  // Two submits of one sweep at once: one waits for the other's lock (SQLite) and may time out; it tries
  // again, and then finds the plan written (every statement is idempotent).
  for (let attempt = 1; ; attempt++) {
    try {
      return await writePlanRows(db, rows, label);
    } catch (err) {
      if (!isDatabaseUnavailable(err) || err instanceof DatabaseMovedError || attempt >= PLAN_TRIES) throw err;
      await sleep(Math.min(100 * 2 ** attempt, 2000));
    }
  }
}

/** Tries of a plan write that found the database locked or busy (about 45 s in all). */
const PLAN_TRIES = 25;

export type SweepRow = ReturnType<typeof sweepRowOf>;
export type PlanSource = SourceMeta & { files?: number | null; bytes?: number | null };

/**
 * What a plan writes: the Sweep row, the sources its builds read, and one Run row per planned run. Made
 * from a Plan at submit (planRowsOf), or by the collector from the sweep's definition that travelled with
 * its jobs (queue/sweep-definition.ts), so both write the same rows through writePlanRows.
 */
export interface PlanRows {
  row: SweepRow;
  sources: readonly PlanSource[];
  runs: ReadonlyArray<{ id: string; groupHash: string; rep: number }>;
  /** Run.params of runs[i]: canonicalJson of its points. */
  params(i: number): string;
}

export function planRowsOf(plan: Plan, source: string | null): PlanRows {
  return {
    row: sweepRowOf(plan, source),
    sources: plan.builds.flatMap((b) => (b.source.kind === 'bundle' ? [{ ...b.source.meta, files: b.source.files, bytes: b.source.bytes }] : [])),
    runs: plan.runs,
    params: (i) => pointsJson(plan.runs[i]!.points),
  };
}

/** The Sweep row's fields, as the plan says them (also carried by the sweep's definition: queue/sweep-definition.ts). */
export function sweepRowOf(plan: Plan, source: string | null): { id: string; name: string; pool: string; spec: string; source: string | null; points: number; runs: number } {
  return {
    id: plan.sweepId,
    name: plan.sweep.name,
    pool: plan.sweep.pool,
    // The spec as written, and what each build resolved to (its source hash; 'worker' when each worker builds its own).
    spec: canonicalJson({ ...plan.sweep, resolvedBuilds: plan.builds.map((b) => ({ name: b.name, source: b.source.kind === 'bundle' ? b.source.hash : 'worker', flags: b.flags, label: b.label })) }),
    source,
    points: plan.points.length,
    runs: plan.runs.length,
  };
}

/** One try of a plan write (recordPlan retries it while the database is busy; the collector's queue retries it). */
export async function writePlanRows(db: Db, plan: PlanRows, label: string | null): Promise<PlanWrite> {
  const row = plan.row;
  await recordBuildSources(db, providerOf(db), plan.sources);
  const before = await db.sweep.findUnique({ where: { id: row.id }, select: { label: true, name: true } });
  let existed = before !== null && before.name !== UNPLANNED;
  if (!before) {
    try {
      await db.sweep.create({ data: { ...row, label } });
    } catch (err) {
      // Created by a concurrent submit of the same sweep since the read: already submitted, not an error.
      if (!isUniqueViolation(err)) throw err;
      existed = true;
      if (label !== null) await db.sweep.update({ where: { id: row.id }, data: { label } });
    }
  } else if (before.name === UNPLANNED) {
    // The collector met this sweep's outcomes before its plan (a job without its definition): the plan wins.
    await db.sweep.update({ where: { id: row.id }, data: { ...row, ...(label !== null ? { label } : {}) } });
  } else if (label !== null) {
    await db.sweep.update({ where: { id: row.id }, data: { label } });
  }
  const known = new Map<string, string>();
  for (const r of await db.run.findMany({ where: { sweepId: row.id }, select: { id: true, status: true } })) {
    known.set(r.id, r.status);
  }
  const fresh: number[] = [];
  plan.runs.forEach((r, i) => {
    if (!known.has(r.id)) fresh.push(i);
  });
  // One multi-row INSERT per chunk, through Prisma's raw query: createMany measured 7.5 s for
  // 10,000 rows on SQLite, this 0.7 s. ON CONFLICT DO NOTHING: a concurrent submit of the same sweep is harmless.
  const provider = providerOf(db);
  await db.$transaction(async (tx) => {
    for (let i = 0; i < fresh.length; i += CHUNK) {
      const chunk = fresh.slice(i, i + CHUNK);
      const { sql, values } = insertRecords(
        provider,
        'Run',
        chunk.map((k): Pick<RunModel, 'id' | 'sweepId' | 'groupHash' | 'rep' | 'pool' | 'params' | 'status'> => {
          const r = plan.runs[k]!;
          return { id: r.id, sweepId: row.id, groupHash: r.groupHash, rep: r.rep, pool: row.pool, params: plan.params(k), status: 'queued' };
        }),
      );
      await tx.$executeRawUnsafe(`${sql} ON CONFLICT DO NOTHING`, ...values);
    }
  }, { timeout: 60_000 });
  const pending = new Set<string>();
  const ended: Record<string, number> = {};
  for (const r of plan.runs) {
    const status = known.get(r.id);
    if (status === undefined || status === 'queued') pending.add(r.id);
    else ended[status] = (ended[status] ?? 0) + 1;
  }
  return { created: fresh.length, existing: known.size, pending, ended, previousLabel: before?.label ?? null, existed };
}

/**
 * BuildSource rows: what is known of each source (commit, time, parents, generation, dirty). The
 * first description of a hash stays (ON CONFLICT DO NOTHING): the same bytes are the same source,
 * whichever sweep or worker saw them first.
 */
export async function recordBuildSources(db: Db | Tx, provider: Provider, sources: ReadonlyArray<SourceMeta & { files?: number | null; bytes?: number | null }>): Promise<void> {
  if (sources.length === 0) return;
  const rows = [...new Map(sources.map((s) => [s.hash, s])).values()];
  const { sql, values } = insertRecords(
    provider,
    'BuildSource',
    rows.map((s): Omit<BuildSourceModel, 'firstSeen'> => ({
      hash: s.hash,
      gitCommit: s.gitCommit,
      commitTime: s.commitTime,
      parents: JSON.stringify(s.parents),
      generation: s.generation,
      dirty: s.dirty,
      label: s.label,
      files: s.files ?? null,
      bytes: s.bytes ?? null,
    })),
  );
  await db.$executeRawUnsafe(`${sql} ON CONFLICT ("hash") DO NOTHING`, ...values);
}
