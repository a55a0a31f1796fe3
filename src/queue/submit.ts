/**
 * Submitting a planned sweep: the plan goes to the database first, then one
 * BullMQ job per pending run, with the run id as job id. Redis ignores a job
 * id it already holds and the plan skips runs that already have an outcome,
 * so submitting the same sweep twice adds no work.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { recordPlan } from '../db/plan.js';
import type { JobBuild, RunJob } from '../schema/job.js';
import { storeBundles } from '../source/store.js';
import { buildReports, type BuildReport } from './format-builds.js';
import type { Plan, PlannedRun } from '../sweep/expand.js';
import { jobKey, poolsKey, runQueueName } from './names.js';
import { RUN_JOB_OPTIONS } from './options.js';

export interface SubmitReport {
  sweepId: string;
  pool: string;
  /** Each build: its name, source hash (null: each worker's own checkout), commit and whether it was dirty. */
  builds: BuildReport[];
  points: number;
  runs: number;
  enqueued: number;
  alreadyQueued: number;
  alreadyDone: number;
}

const BATCH = 1000;
/** Enqueue batches in flight at once. */
const ENQUEUE_LANES = 4;

/** The job's builds: those of the run's points, in the plan's order; a bundle by hash, never its bytes. */
export function jobBuilds(plan: Plan, run: PlannedRun): JobBuild[] {
  return plan.builds
    .filter((b) => run.points.some((p) => p.build === b.name))
    .map((b) => ({
      name: b.name,
      // Already checked against the allow-list (src/schema/sweep.ts BUILD_FLAG_RULES).
      flags: [...b.flags],
      source:
        b.source.kind === 'bundle'
          ? { bundle: b.source.hash, commit: b.source.meta.gitCommit === null ? null : b.source.meta.gitCommit + (b.source.meta.dirty ? '-dirty' : '') }
          : { worker: true as const },
    }));
}

export function toJob(plan: Plan, run: PlannedRun, submittedAt: number): RunJob {
  return {
    runId: run.id,
    sweepId: plan.sweepId,
    groupHash: run.groupHash,
    rep: run.rep,
    seed: run.seed,
    timeoutS: plan.sweep.timeout_s,
    powerWaitS: plan.sweep.power_wait_s,
    submittedAt,
    rounds: plan.sweep.rounds,
    builds: jobBuilds(plan, run),
    points: run.points,
  };
}

/** The bundles a plan carries (one per distinct source). */
export function planBundles(plan: Plan): Array<{ hash: string; blob: Buffer }> {
  const out = new Map<string, Buffer>();
  for (const b of plan.builds) if (b.source.kind === 'bundle') out.set(b.source.hash, b.source.blob);
  return [...out].map(([hash, blob]) => ({ hash, blob }));
}

export async function submitPlan(db: Db, redis: Redis, plan: Plan, source: string | null): Promise<SubmitReport> {
  // Bundles first, then the plan, then the jobs: a job never names a bundle that is not there yet.
  await storeBundles(redis, plan.sweepId, planBundles(plan));
  const written = await recordPlan(db, plan, source);
  const prefix = queuePrefix();
  const queueName = runQueueName(plan.sweep.pool);
  const queue = new Queue(queueName, { connection: redis, prefix });
  await redis.sadd(poolsKey(prefix), plan.sweep.pool);
  const pending = plan.runs.filter((r) => written.pending.has(r.id));
  let enqueued = 0;
  let alreadyQueued = 0;
  const now = Date.now();
  // Batches go out together: BullMQ's client-side work for one overlaps Redis's for another.
  const enqueueBatch = async (batch: PlannedRun[]): Promise<void> => {
    // One round trip tells which job ids Redis already holds.
    const pipe = redis.pipeline();
    for (const r of batch) pipe.exists(jobKey(queueName, r.id, prefix));
    const exists = (await pipe.exec()) ?? [];
    const fresh = batch.filter((_, j) => exists[j]?.[1] !== 1);
    alreadyQueued += batch.length - fresh.length;
    if (fresh.length > 0) {
      await queue.addBulk(fresh.map((r) => ({ name: 'run', data: toJob(plan, r, now), opts: { ...RUN_JOB_OPTIONS, jobId: r.id } })));
      enqueued += fresh.length;
    }
  };
  try {
    // A few batches in flight, not all: every batch in flight holds its jobs twice (objects and BullMQ's
    // serialised form); 200,000 runs all at once peaked at 1.5 GB.
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let i = next; i < pending.length; i = next) {
        next += BATCH;
        await enqueueBatch(pending.slice(i, i + BATCH));
      }
    };
    await Promise.all(Array.from({ length: ENQUEUE_LANES }, lane));
  } finally {
    await queue.close();
  }
  return {
    sweepId: plan.sweepId,
    pool: plan.sweep.pool,
    builds: buildReports(plan),
    points: plan.points.length,
    runs: plan.runs.length,
    enqueued,
    alreadyQueued,
    alreadyDone: plan.runs.length - pending.length,
  };
}

