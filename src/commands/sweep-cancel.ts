/**
 * `moefarm sweep cancel ID`: the sweep's waiting jobs leave Redis, its runs
 * without an outcome are marked `cancelled` at once (no collector needed),
 * and the workers running one of its jobs stop the binary within about half
 * a second (they poll the sweep's cancel key: queue/cancel.ts,
 * worker/cancel-watch.ts). A run that finished with a result meanwhile keeps
 * it: the collector lets a `done` replace `cancelled` (db/record.ts).
 */
import { bundleGraceSeconds } from '../config.js';
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { activeJobs, removeJobs, requestCancel } from '../queue/cancel.js';
import { releaseEndedSweep } from '../queue/sweep-definition.js';
import { withDb, withRedis } from './context.js';

export interface CancelReport {
  sweepId: string;
  at: string;
  /** Waiting or delayed jobs taken off the queue. */
  removed: number;
  /** Jobs a worker was running: told to stop. */
  running: number;
  /** Runs marked cancelled. */
  cancelled: number;
  /** Runs that had an outcome already, by outcome. */
  ended: Record<string, number>;
}

export async function sweepCancel(id: string, opts: { json?: boolean }): Promise<void> {
  const report = await withRedis((redis) =>
    withDb(async (db): Promise<CancelReport> => {
      if (!(await db.sweep.findUnique({ where: { id }, select: { id: true } }))) {
        throw new UsageError(`sweep ${id}: no such sweep in the database (moefarm sweep list shows them)`);
      }
      const at = Date.now();
      const queued = await db.run.findMany({ where: { sweepId: id, status: 'queued' }, select: { id: true, pool: true } });
      let removed = 0;
      const running = new Set<string>();
      const byPool = new Map<string, string[]>();
      for (const r of queued) byPool.set(r.pool, [...(byPool.get(r.pool) ?? []), r.id]);
      // Which of them a worker is running, before anything changes (the reason says how far each had got).
      for (const [pool, ids] of byPool) for (const r of await activeJobs(redis, pool, ids)) running.add(r);
      // The database before the workers are told: a worker that stops a run reports it cancelled, and if that
      // report reached the database first (the first outcome wins) this cancel would not count the run, nor give
      // it this reason (seen on a loaded machine: 3 of 4 runs counted).
      const cancelled = await markCancelled(db, id, at, running);
      if (queued.length > 0) {
        // Then the key: a worker that takes one of these jobs from now on ends it as cancelled before it runs, and
        // one running a job stops the binary; then the waiting jobs leave the queue.
        await requestCancel(redis, id, at);
        for (const [pool, ids] of byPool) removed += (await removeJobs(redis, pool, ids)).size;
      }
      // Every run has an outcome now: the sweep's source bundles and definition are free to expire.
      await releaseEndedSweep(redis, id, bundleGraceSeconds());
      const ended: Record<string, number> = {};
      for (const g of await db.run.groupBy({ by: ['status'], where: { sweepId: id, status: { not: 'cancelled' } }, _count: { _all: true } })) ended[g.status] = g._count._all;
      return { sweepId: id, at: new Date(at).toISOString(), removed, running: running.size, cancelled, ended };
    }, { mustExist: true }),
  );
  if (opts.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
    return;
  }
  const before = Object.entries(report.ended).map(([k, v]) => `${k} ${v}`).join(', ');
  process.stdout.write(
    report.cancelled === 0
      ? `sweep ${report.sweepId}: nothing to cancel, every run has an outcome (${before || 'none'})\n`
      : `sweep ${report.sweepId}: cancelled at ${report.at}: ${report.cancelled} run(s) marked cancelled; ${report.removed} waiting job(s) removed from the queue, ` +
          `${report.running} running job(s) told to stop (their workers stop the binary within a second or so)` +
          `${before ? `; runs that had ended before: ${before}` : ''}\n` +
          `moefarm sweep retry ${report.sweepId} --status cancelled runs them again\n`,
  );
}

/** Runs of the sweep still without an outcome become `cancelled`, with a reason that says how far each had got. */
async function markCancelled(db: Db, sweepId: string, at: number, running: ReadonlySet<string>): Promise<number> {
  const when = new Date(at).toISOString();
  const finishedAt = new Date(at);
  const a = await db.run.updateMany({
    where: { sweepId, status: 'queued', id: { in: [...running] } },
    data: { status: 'cancelled', reason: `sweep cancelled at ${when} (moefarm sweep cancel) while a worker ran it; its worker stops the binary`, finishedAt },
  });
  const b = await db.run.updateMany({
    where: { sweepId, status: 'queued' },
    data: { status: 'cancelled', reason: `sweep cancelled at ${when} (moefarm sweep cancel) before it ran`, finishedAt },
  });
  return a.count + b.count;
}
