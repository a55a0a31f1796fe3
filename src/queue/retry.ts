/**
 * Running again the runs of a sweep that ended with chosen outcomes
 * (`sweep retry ID [--status …]`, `sweep submit FILE --retry …`).
 *
 * A retried run keeps its id, rep and seed and goes back to `queued`: the
 * sweep's counts, comparisons and reports then see one run with its latest
 * outcome, not a failure beside a success. What it ended with before is kept
 * in Run.previous (status, reason, worker, when) and Run.retries counts the
 * retries. Chosen over new rep numbers (as --until-confident adds): a new rep
 * would leave the crashed run counted as failed for ever, and a second retry
 * could not tell it had been retried already.
 *
 * Order, so that no run is left waiting for a job that will never come:
 * 1. the bundles the jobs name are pinned, stored again from the database
 *    where Redis lost them (or the retry is refused before anything changes,
 *    naming the missing bundle);
 * 2. the run's old job and its old outcome message leave Redis (both reuse
 *    the run id, and BullMQ ignores a job id it still holds);
 * 3. the Run row goes back to `queued`, only if it still has that outcome;
 * 4. the job is enqueued again, and the sweep's cancel key goes.
 * A crash between 3 and 4 leaves a queued run without a job: the next retry
 * (or `sweep resume`) finds such runs (no job in hand, queue/requeue.ts) and
 * enqueues them too.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { NO_OUTCOME } from '../db/record.js';
import { ExitError } from '../errors.js';
import { RunParamsSchema } from '../schema/job.js';
import { clearCancel, removeJobs } from './cancel.js';
import { RESULTS_QUEUE } from './names.js';
import { ensureBundles, enqueueUnfinished } from './requeue.js';
import type { JobTemplate } from './job.js';
import type { PlannedRun } from '../sweep/expand.js';

/** Earlier outcomes kept per run (the latest last). */
const PREVIOUS_KEPT = 20;

export interface RetryReport {
  sweepId: string;
  statuses: string[];
  /** Runs put back in the queue, by the outcome they had. */
  retried: Record<string, number>;
  /** Runs that were queued with no job in Redis (a retry cut short) and were enqueued. */
  requeued: number;
  /** Runs whose old outcome message could not be removed (a collector holds it): left as they are. */
  skipped: string[];
}

const PreviousOutcomesSchema = z.array(z.object({ status: z.string(), reason: z.string().nullable(), worker: z.string().nullable(), finishedAt: z.string().nullable() }));
export type PreviousOutcome = z.infer<typeof PreviousOutcomesSchema>[number];

export async function retryRuns(db: Db, redis: Redis, t: JobTemplate, statuses: readonly string[]): Promise<RetryReport> {
  const report: RetryReport = { sweepId: t.sweepId, statuses: [...statuses], retried: {}, requeued: 0, skipped: [] };
  const prefix = queuePrefix();
  const ended = await db.run.findMany({
    where: { sweepId: t.sweepId, status: { in: [...statuses] } },
    select: { id: true, groupHash: true, rep: true, params: true, status: true, reason: true, workerId: true, finishedAt: true, previous: true },
  });
  // Queued runs: those without a job in hand (a retry cut short between the database and the queue, or Redis
  // lost them) are enqueued too (queue/requeue.ts).
  const queued = await db.run.findMany({ where: { sweepId: t.sweepId, status: 'queued' }, select: { id: true, groupHash: true, rep: true, params: true } });
  if (ended.length === 0 && queued.length === 0) return report;

  const missing = await ensureBundles(db, redis, t);
  if (missing.length) {
    const names = t.builds.filter((b) => 'bundle' in b.source && missing.includes(b.source.bundle)).map((b) => b.name);
    throw new ExitError(
      `sweep ${t.sweepId}: the source bundle of build ${names.join(', ')} (${missing.map((h) => h.slice(0, 12)).join(', ')}) is neither in Redis nor in the database ` +
        `(a finished sweep's bundles expire from Redis after MOEFARM_BUNDLE_GRACE_S; the database keeps those submitted since schema 005); nothing was changed. ` +
        `Re-submit the sweep file with --retry (moefarm sweep submit FILE --retry ${statuses.join(',')}): it bundles the same sources again`,
      1,
    );
  }

  const ids = ended.map((r) => r.id);
  await removeJobs(redis, t.pool, ids);
  const results = new Queue(RESULTS_QUEUE, { connection: redis, prefix });
  const cleared = new Set<string>();
  try {
    for (const id of ids) {
      await results.remove(id);
      // A message a collector holds cannot be removed; the run keeps its outcome rather than wait for ever.
      if ((await results.getJob(id)) === undefined) cleared.add(id);
      else report.skipped.push(id);
    }
  } finally {
    await results.close();
  }

  const reset: typeof ended = [];
  await db.$transaction(async (tx) => {
    for (const r of ended) {
      if (!cleared.has(r.id)) continue;
      const previous = [...parsePrevious(r.previous), { status: r.status, reason: r.reason, worker: r.workerId, finishedAt: r.finishedAt?.toISOString() ?? null }].slice(-PREVIOUS_KEPT);
      const n = await tx.run.updateMany({
        where: { id: r.id, status: r.status },
        data: {
          ...NO_OUTCOME,
          retries: { increment: 1 },
          previous: JSON.stringify(previous),
        },
      });
      if (n.count === 1) {
        reset.push(r);
        report.retried[r.status] = (report.retried[r.status] ?? 0) + 1;
      }
    }
  }, { timeout: 60_000 });

  const asPlanned = (r: { id: string; groupHash: string; rep: number; params: string }): PlannedRun => ({ id: r.id, groupHash: r.groupHash, rep: r.rep, seed: t.seed + r.rep, points: RunParamsSchema.parse(JSON.parse(r.params)) });
  await clearCancel(redis, t.sweepId);
  // Each run to its GPU count's queue of the pool (enqueueUnfinished notes the pool and its counts).
  const now = Date.now();
  await enqueueUnfinished(db, redis, t, reset.map(asPlanned), now);
  report.requeued = (await enqueueUnfinished(db, redis, t, queued.map(asPlanned), now)).enqueued;
  return report;
}

/** Run.previous: the outcomes a run had before its retries. */
export function parsePrevious(json: string | null): PreviousOutcome[] {
  if (json === null) return [];
  try {
    return PreviousOutcomesSchema.parse(JSON.parse(json));
  } catch {
    return []; // unreadable history is dropped rather than blocking a retry
  }
}
