/**
 * The database is the truth for what has finished; Redis is the transport.
 * A run the database holds as `queued` gets a job, whatever Redis remembers.
 *
 * BullMQ ignores a job id it still holds, and keeps completed run jobs for 7
 * days (queue/options.ts) and completed outcome messages for a day, both under
 * the run id. So after the database was replaced or lost its rows (a new
 * SQLite file, `npm run demo` after deleting moefarm.db), a re-submit used to
 * find every id "already queued" and enqueue nothing: `sweep status` showed
 * `waiting N` for ever. After Redis lost its state (FLUSHALL, a new instance)
 * nothing was queued either, and nothing re-enqueued it.
 *
 * For each run the database holds as queued, the run job's and the outcome
 * message's states decide:
 * - run job waiting, delayed, active (or failed: the collector records it as
 *   `failed` from the failed set) → it is in hand: left alone;
 * - outcome message waiting or being written → the collector will record it:
 *   left alone;
 * - otherwise (no job, or only finished entries the database does not know)
 *   → those stale entries are removed and a fresh job is enqueued.
 * The run job is read before the outcome message, and the database again
 * after both: a worker adds the outcome before it completes the run job, and
 * the collector commits before it completes the outcome, so a run finishing
 * meanwhile is seen as in hand or as finished, never as stale.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { loadBundles } from '../db/bundles.js';
import type { PlannedRun } from '../sweep/expand.js';
import { pinBundles, storeBundles } from '../source/store.js';
import { ExitError } from '../errors.js';
import { RunParamsSchema } from '../schema/job.js';
import { clearCancel } from './cancel.js';
import { jobKey, jobSetKey, notePoolGpus, RESULTS_QUEUE, runQueueName } from './names.js';
import { RUN_JOB_OPTIONS } from './options.js';
import { jobFromTemplate, runGpus, type JobTemplate } from './job.js';
import { pinDefinition } from './sweep-definition.js';

export type EntryState = 'absent' | 'pending' | 'completed' | 'failed';

export interface RequeueReport {
  /** Runs given a job now. */
  enqueued: number;
  /** Runs whose job is waiting or running, or whose outcome waits for the collector. */
  inHand: number;
  /** Of the enqueued, runs that Redis remembered as finished (a completed job or outcome) but the database does not. */
  stale: number;
}

/** States of these job ids in one queue, in two round trips' worth of one pipeline. */
export async function entryStates(redis: Redis, queue: string, ids: readonly string[], prefix = queuePrefix()): Promise<EntryState[]> {
  if (ids.length === 0) return [];
  const pipe = redis.pipeline();
  for (const id of ids) {
    pipe.exists(jobKey(queue, id, prefix));
    pipe.zscore(jobSetKey(queue, 'completed', prefix), id);
    pipe.zscore(jobSetKey(queue, 'failed', prefix), id);
  }
  const res = (await pipe.exec()) ?? [];
  return ids.map((_, i) => {
    const [exists, completed, failed] = [res[3 * i]?.[1], res[3 * i + 1]?.[1], res[3 * i + 2]?.[1]];
    if (exists !== 1) return 'absent';
    if (completed !== null && completed !== undefined) return 'completed';
    if (failed !== null && failed !== undefined) return 'failed';
    return 'pending';
  });
}

const BATCH = 1000;
/** Enqueue batches in flight at once: BullMQ's client-side work for one overlaps Redis's for another. */
const ENQUEUE_LANES = 4;

/**
 * Gives every one of `runs` (each queued in the database, as the caller read it) a job unless one is in hand.
 * Each run's job lives in its GPU count's queue of the pool (queue/names.ts: run.POOL, run.POOL@gN), which
 * is noted for the pool first. Returns what it did. The caller pins the bundles the jobs name first
 * (ensureBundles).
 */
export async function enqueueUnfinished(db: Db, redis: Redis, t: JobTemplate, runs: readonly PlannedRun[], submittedAt = Date.now()): Promise<RequeueReport> {
  const report: RequeueReport = { enqueued: 0, inHand: 0, stale: 0 };
  if (runs.length === 0) return report;
  const prefix = queuePrefix();
  const byGpus = new Map<number, PlannedRun[]>();
  for (const r of runs) {
    const list = byGpus.get(runGpus(r));
    if (list) list.push(r);
    else byGpus.set(runGpus(r), [r]);
  }
  await notePoolGpus(redis, t.pool, byGpus.keys(), prefix);
  const results = new Queue(RESULTS_QUEUE, { connection: redis, prefix });
  try {
    for (const [gpus, group] of [...byGpus].sort((a, b) => a[0] - b[0])) {
      const queueName = runQueueName(t.pool, gpus);
      const queue = new Queue(queueName, { connection: redis, prefix });
      try {
        await enqueueInQueue(db, redis, t, queue, queueName, results, group, submittedAt, report);
      } finally {
        await queue.close();
      }
    }
  } finally {
    await results.close();
  }
  return report;
}

/** enqueueUnfinished for the runs of one queue (they share a GPU count). */
async function enqueueInQueue(
  db: Db,
  redis: Redis,
  t: JobTemplate,
  queue: Queue,
  queueName: string,
  results: Queue,
  runs: readonly PlannedRun[],
  submittedAt: number,
  report: RequeueReport,
): Promise<void> {
  const prefix = queuePrefix();
  // A few batches in flight, not all: every batch in flight holds its jobs twice (objects and BullMQ's
  // serialised form); 200,000 runs all at once peaked at 1.5 GB.
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next; i < runs.length; i = next) {
      next += BATCH;
      await one(runs.slice(i, i + BATCH));
    }
  };
  const one = async (batch: readonly PlannedRun[]): Promise<void> => {
      const ids = batch.map((r) => r.id);
      const jobStates = await entryStates(redis, queueName, ids, prefix);
      const outcomeStates = await entryStates(redis, RESULTS_QUEUE, ids, prefix);
      const candidates: Array<{ run: PlannedRun; job: EntryState; outcome: EntryState }> = [];
      batch.forEach((run, j) => {
        const job = jobStates[j]!;
        const outcome = outcomeStates[j]!;
        if (job === 'pending' || job === 'failed' || outcome === 'pending') report.inHand++;
        else candidates.push({ run, job, outcome });
      });
      if (candidates.length === 0) return;
      // The database again, after Redis: a run whose outcome was committed meanwhile is finished, not stale.
      const still = new Set(
        (await db.run.findMany({ where: { id: { in: candidates.map((c) => c.run.id) }, status: 'queued' }, select: { id: true } })).map((r) => r.id),
      );
      const fresh = candidates.filter((c) => still.has(c.run.id));
      // Stale entries go first: BullMQ would ignore a new job under an id it still holds, and the worker's
      // outcome under an id the results queue still holds.
      await Promise.all(
        fresh.flatMap((c) => [
          ...(c.job !== 'absent' ? [queue.remove(c.run.id)] : []),
          ...(c.outcome !== 'absent' ? [results.remove(c.run.id)] : []),
        ]),
      );
      report.stale += fresh.filter((c) => c.job !== 'absent' || c.outcome !== 'absent').length;
      if (fresh.length > 0) {
        // Jobs that name the sweep's definition keep it from expiring until the sweep ends again.
        if (t.definition) await pinDefinition(redis, t.sweepId, prefix);
        await queue.addBulk(fresh.map((c) => ({ name: 'run', data: jobFromTemplate(t, c.run, submittedAt), opts: { ...RUN_JOB_OPTIONS, jobId: c.run.id } })));
        report.enqueued += fresh.length;
      }
  };
  await Promise.all(Array.from({ length: ENQUEUE_LANES }, lane));
}

/**
 * Pins the bundles a sweep's jobs name, storing again from the database any that Redis no longer holds.
 * Returns the hashes neither holds (the sweep file must be submitted again to bundle them).
 */
export async function ensureBundles(db: Db, redis: Redis, t: JobTemplate): Promise<string[]> {
  const hashes = [...new Set(t.builds.flatMap((b) => ('bundle' in b.source ? [b.source.bundle] : [])))];
  const missing = await pinBundles(redis, t.sweepId, hashes);
  if (missing.length === 0) return [];
  const found = await loadBundles(db, missing);
  await storeBundles(redis, t.sweepId, found);
  const restored = new Set(found.map((b) => b.hash));
  return missing.filter((h) => !restored.has(h));
}

export interface ResumeReport extends RequeueReport {
  sweepId: string;
  pool: string;
  /** Runs the database holds as queued (no outcome yet). */
  queued: number;
  /** Bundles stored again in Redis from the database. */
  bundlesRestored: number;
}

/**
 * `sweep resume ID`: every run of the sweep that the database holds as queued gets a job unless one is in
 * hand, its bundles stored again from the database where Redis lost them. What the sweep file's re-submit
 * does, without the file.
 */
export async function resumeSweep(db: Db, redis: Redis, t: JobTemplate): Promise<ResumeReport> {
  const rows = await db.run.findMany({ where: { sweepId: t.sweepId, status: 'queued' }, select: { id: true, groupHash: true, rep: true, params: true } });
  const report: ResumeReport = { sweepId: t.sweepId, pool: t.pool, queued: rows.length, enqueued: 0, inHand: 0, stale: 0, bundlesRestored: 0 };
  if (rows.length === 0) return report;
  const hashes = [...new Set(t.builds.flatMap((b) => ('bundle' in b.source ? [b.source.bundle] : [])))];
  const before = hashes.length ? await pinBundles(redis, t.sweepId, hashes) : [];
  const missing = before.length ? await ensureBundles(db, redis, t) : [];
  if (missing.length) {
    const names = t.builds.filter((b) => 'bundle' in b.source && missing.includes(b.source.bundle)).map((b) => b.name);
    throw new ExitError(
      `sweep ${t.sweepId}: the source bundle of build ${names.join(', ')} (${missing.map((h) => h.slice(0, 12)).join(', ')}) is neither in Redis nor in the database; ` +
        `nothing was enqueued. Submit the sweep file again (moefarm sweep submit FILE): it bundles the sources and enqueues every unfinished run`,
      1,
    );
  }
  report.bundlesRestored = before.length;
  await clearCancel(redis, t.sweepId);
  const r = await enqueueUnfinished(
    db,
    redis,
    t,
    rows.map((row) => ({ id: row.id, groupHash: row.groupHash, rep: row.rep, seed: t.seed + row.rep, points: RunParamsSchema.parse(JSON.parse(row.params)) })),
  );
  return { ...report, ...r };
}
