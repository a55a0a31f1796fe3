/**
 * Submitting a planned sweep: the plan goes to the database first, then one
 * BullMQ job per pending run, with the run id as job id. Redis ignores a job
 * id it already holds and the plan skips runs that already have an outcome,
 * so submitting the same sweep twice adds no work.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { recordPlan } from '../db/plan.js';
import { saveBundles } from '../db/bundles.js';
import { storeBundles } from '../source/store.js';
import { buildReports, type BuildReport } from './format-builds.js';
import type { Plan, PlannedRun } from '../sweep/expand.js';
import { notePoolGpus, submitLockKey } from './names.js';
import { enqueueUnfinished } from './requeue.js';
import { clearCancel } from './cancel.js';
import { retryRuns, type RetryReport } from './retry.js';
import { planTemplate, runGpus, type JobTemplate } from './job.js';
import { encodeDefinition, storeDefinition } from './sweep-definition.js';

export interface SubmitReport {
  sweepId: string;
  pool: string;
  label: string | null;
  /** The label the sweep had before, when this submission changed it. */
  relabelledFrom: string | null;
  /** Each build: its name, source hash (null: each worker's own checkout), commit and whether it was dirty. */
  builds: BuildReport[];
  points: number;
  runs: number;
  enqueued: number;
  alreadyQueued: number;
  /** Of the enqueued: runs Redis remembered as finished but the database does not hold as finished (run again). */
  restored: number;
  /** Planned runs that have a result already (never run again). */
  alreadyDone: number;
  /** Planned runs that ended without a result, by outcome, and were not retried (sweep retry, or --retry, runs them again). */
  alreadyEnded: Record<string, number>;
  /** With --retry: the runs put back in the queue. */
  retry: RetryReport | null;
  /** The database held this sweep's plan before (an earlier submission, or one that ran at the same time and went first). */
  alreadySubmitted: boolean;
}

export interface SubmitOptions {
  /** Stored with the sweep (sweep submit --label). */
  label?: string;
  /** Run again the runs of this sweep that ended with these outcomes (sweep submit --retry). */
  retry?: readonly string[];
}

/** The bundles a plan carries (one per distinct source). */
export function planBundles(plan: Plan): Array<{ hash: string; blob: Buffer }> {
  const out = new Map<string, Buffer>();
  for (const b of plan.builds) if (b.source.kind === 'bundle') out.set(b.source.hash, b.source.blob);
  return [...out].map(([hash, blob]) => ({ hash, blob }));
}

/**
 * Two submissions of one sweep at once (two shells, a script run twice) take turns: each holds a lock in
 * Redis while it writes the plan and enqueues, so the second finds the first's plan and jobs and says so
 * ("already submitted", "enqueued 0 (N already queued…)") instead of counting the same jobs twice. Every
 * step is idempotent anyway; the lock makes the report true. It expires on its own if its holder dies.
 */
export async function submitPlan(db: Db, redis: Redis, plan: Plan, source: string | null, opts: SubmitOptions = {}): Promise<SubmitReport> {
  const key = submitLockKey(plan.sweepId);
  const token = randomUUID();
  const until = Date.now() + SUBMIT_LOCK_MS;
  while ((await redis.set(key, token, 'PX', SUBMIT_LOCK_MS, 'NX')) === null) {
    if (Date.now() > until) break; // its holder is taking very long: go ahead, every step is idempotent
    await sleep(100);
  }
  try {
    return await submitLocked(db, redis, plan, source, opts);
  } finally {
    await redis.eval(UNLOCK, 1, key, token).catch(() => {});
  }
}

/** How long a submission holds the lock at most (a 200,000-run submit takes about half a minute). */
const SUBMIT_LOCK_MS = 5 * 60_000;
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

async function submitLocked(db: Db, redis: Redis, plan: Plan, source: string | null, opts: SubmitOptions): Promise<SubmitReport> {
  // Bundles first, then the plan, then the jobs: a job never names a bundle that is not there yet. The
  // database keeps each bundle too, so the sweep can be resumed after Redis lost it (sweep resume).
  await storeBundles(redis, plan.sweepId, planBundles(plan));
  const written = await recordPlan(db, plan, source, opts.label ?? null);
  await saveBundles(db, planBundles(plan));
  // The plan travels too, once per sweep: the collector records it in its own database, wherever this one is.
  // The label the database now holds goes with it (a re-submit without --label keeps the label it had).
  const definition = await encodeDefinition(plan, source, opts.label ?? written.previousLabel);
  await storeDefinition(redis, definition);
  const template: JobTemplate = { ...planTemplate(plan), definition: definition.hash };
  const prefix = queuePrefix();
  const pending = plan.runs.filter((r) => written.pending.has(r.id));
  // Every GPU count of the sweep is noted (a queue per count, queue/names.ts), so status, cancel and the
  // collector look at each of the pool's queues, even one whose runs have all finished.
  await notePoolGpus(redis, plan.sweep.pool, plan.runs.map(runGpus), prefix);
  // Work for the sweep again: a cancel of an earlier submission must not stop it.
  if (pending.length > 0) await clearCancel(redis, plan.sweepId);
  // Every run the database does not hold as finished gets a job in its GPU count's queue, whatever Redis
  // remembers (queue/requeue.ts).
  const queued = await enqueueUnfinished(db, redis, template, pending);
  const retry = opts.retry && opts.retry.length ? await retryRuns(db, redis, template, opts.retry) : null;
  const alreadyEnded = { ...written.ended };
  delete alreadyEnded['done'];
  for (const [status, n] of Object.entries(retry?.retried ?? {})) {
    alreadyEnded[status] = (alreadyEnded[status] ?? 0) - n;
    if (alreadyEnded[status]! <= 0) delete alreadyEnded[status];
  }
  return {
    sweepId: plan.sweepId,
    pool: plan.sweep.pool,
    label: opts.label ?? written.previousLabel,
    relabelledFrom: opts.label !== undefined && written.previousLabel !== null && written.previousLabel !== opts.label ? written.previousLabel : null,
    builds: buildReports(plan),
    points: plan.points.length,
    runs: plan.runs.length,
    enqueued: queued.enqueued,
    alreadyQueued: queued.inHand,
    restored: queued.stale,
    alreadyDone: written.ended['done'] ?? 0,
    alreadyEnded,
    retry,
    alreadySubmitted: written.existed,
  };
}

