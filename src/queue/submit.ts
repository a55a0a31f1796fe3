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
import { jobKey, notePoolGpus, runQueueName } from './names.js';
import { DEFAULT_GPUS_WAIT_S, pointGpus } from '../schema/sweep.js';
import { RUN_JOB_OPTIONS } from './options.js';
import { clearCancel } from './cancel.js';
import { retryRuns, type RetryReport } from './retry.js';

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
  /** Planned runs that have a result already (never run again). */
  alreadyDone: number;
  /** Planned runs that ended without a result, by outcome, and were not retried (sweep retry, or --retry, runs them again). */
  alreadyEnded: Record<string, number>;
  /** With --retry: the runs put back in the queue. */
  retry: RetryReport | null;
}

export interface SubmitOptions {
  /** Stored with the sweep (sweep submit --label). */
  label?: string;
  /** Run again the runs of this sweep that ended with these outcomes (sweep submit --retry). */
  retry?: readonly string[];
}

const BATCH = 1000;
/** Enqueue batches in flight at once. */
const ENQUEUE_LANES = 4;

/**
 * What every job of a sweep shares: its timeouts and rounds, and each build (a bundle by hash, never its
 * bytes). Made from a plan at submit (planTemplate), or from the database for a sweep already recorded
 * (queue/stored-sweep.ts), so a retried run gets the job its first submission had.
 */
export interface JobTemplate {
  sweepId: string;
  pool: string;
  timeoutS: number;
  powerWaitS: number;
  /** How long a job taking several GPUs waits for a worker that owns that many (s). */
  gpusWaitS: number;
  rounds: number;
  /** Seed of rep 0; rep r uses seed + r. */
  seed: number;
  builds: JobBuild[];
}

/** The commit a build's binary reports: hex, "-dirty" when the source had edits not committed. */
export function buildCommit(gitCommit: string | null, dirty: boolean): string | null {
  return gitCommit === null ? null : gitCommit + (dirty ? '-dirty' : '');
}

export function planTemplate(plan: Plan): JobTemplate {
  return {
    sweepId: plan.sweepId,
    pool: plan.sweep.pool,
    timeoutS: plan.sweep.timeout_s,
    powerWaitS: plan.sweep.power_wait_s,
    gpusWaitS: plan.sweep.gpus_wait_s ?? DEFAULT_GPUS_WAIT_S,
    rounds: plan.sweep.rounds,
    seed: plan.sweep.seed,
    builds: plan.builds.map((b) => ({
      name: b.name,
      // Already checked against the allow-list (src/schema/sweep.ts BUILD_FLAG_RULES).
      flags: [...b.flags],
      source: b.source.kind === 'bundle' ? { bundle: b.source.hash, commit: buildCommit(b.source.meta.gitCommit, b.source.meta.dirty) } : { worker: true as const },
    })),
  };
}

/** The job's builds: those of the run's points, in the sweep's order. */
export function jobBuilds(plan: Plan, run: PlannedRun): JobBuild[] {
  return templateBuilds(planTemplate(plan), run);
}

function templateBuilds(t: JobTemplate, run: PlannedRun): JobBuild[] {
  return t.builds.filter((b) => run.points.some((p) => p.build === b.name));
}

export function toJob(plan: Plan, run: PlannedRun, submittedAt: number): RunJob {
  return jobFromTemplate(planTemplate(plan), run, submittedAt);
}

/** The GPUs a run takes (its points share the count: interleave groups only variants and builds). */
export function runGpus(run: Pick<PlannedRun, 'points'>): number {
  return pointGpus(run.points[0]!.point);
}

export function jobFromTemplate(t: JobTemplate, run: PlannedRun, submittedAt: number): RunJob {
  return {
    runId: run.id,
    sweepId: t.sweepId,
    groupHash: run.groupHash,
    rep: run.rep,
    seed: run.seed,
    timeoutS: t.timeoutS,
    powerWaitS: t.powerWaitS,
    // Only where it applies: one-GPU jobs stay as they were.
    ...(runGpus(run) > 1 ? { gpusWaitS: t.gpusWaitS } : {}),
    submittedAt,
    rounds: t.rounds,
    builds: templateBuilds(t, run),
    points: run.points,
  };
}

/** The bundles a plan carries (one per distinct source). */
export function planBundles(plan: Plan): Array<{ hash: string; blob: Buffer }> {
  const out = new Map<string, Buffer>();
  for (const b of plan.builds) if (b.source.kind === 'bundle') out.set(b.source.hash, b.source.blob);
  return [...out].map(([hash, blob]) => ({ hash, blob }));
}

export async function submitPlan(db: Db, redis: Redis, plan: Plan, source: string | null, opts: SubmitOptions = {}): Promise<SubmitReport> {
  // Bundles first, then the plan, then the jobs: a job never names a bundle that is not there yet.
  await storeBundles(redis, plan.sweepId, planBundles(plan));
  const written = await recordPlan(db, plan, source, opts.label ?? null);
  const template = planTemplate(plan);
  const prefix = queuePrefix();
  const pending = plan.runs.filter((r) => written.pending.has(r.id));
  // A queue per GPU count (queue/names.ts): a job that takes N GPUs waits where only workers with N or more listen.
  const byGpus = new Map<number, PlannedRun[]>();
  for (const r of pending) {
    const list = byGpus.get(runGpus(r));
    if (list) list.push(r);
    else byGpus.set(runGpus(r), [r]);
  }
  await notePoolGpus(redis, plan.sweep.pool, [...byGpus.keys(), ...plan.runs.map(runGpus)], prefix);
  let enqueued = 0;
  let alreadyQueued = 0;
  const now = Date.now();
  // Batches go out together: BullMQ's client-side work for one overlaps Redis's for another.
  const enqueueBatch = async (queue: Queue, queueName: string, batch: PlannedRun[]): Promise<void> => {
    // One round trip tells which job ids Redis already holds.
    const pipe = redis.pipeline();
    for (const r of batch) pipe.exists(jobKey(queueName, r.id, prefix));
    const exists = (await pipe.exec()) ?? [];
    const fresh = batch.filter((_, j) => exists[j]?.[1] !== 1);
    alreadyQueued += batch.length - fresh.length;
    if (fresh.length > 0) {
      await queue.addBulk(fresh.map((r) => ({ name: 'run', data: jobFromTemplate(template, r, now), opts: { ...RUN_JOB_OPTIONS, jobId: r.id } })));
      enqueued += fresh.length;
    }
  };
  // Work for the sweep again: a cancel of an earlier submission must not stop it.
  if (pending.length > 0) await clearCancel(redis, plan.sweepId);
  for (const [gpus, runs] of [...byGpus].sort((a, b) => a[0] - b[0])) {
    const queueName = runQueueName(plan.sweep.pool, gpus);
    const queue = new Queue(queueName, { connection: redis, prefix });
    try {
      // A few batches in flight, not all: every batch in flight holds its jobs twice (objects and BullMQ's
      // serialised form); 200,000 runs all at once peaked at 1.5 GB.
      let next = 0;
      const lane = async (): Promise<void> => {
        for (let i = next; i < runs.length; i = next) {
          next += BATCH;
          await enqueueBatch(queue, queueName, runs.slice(i, i + BATCH));
        }
      };
      await Promise.all(Array.from({ length: ENQUEUE_LANES }, lane));
    } finally {
      await queue.close();
    }
  }
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
    enqueued,
    alreadyQueued,
    alreadyDone: written.ended['done'] ?? 0,
    alreadyEnded,
    retry,
  };
}

