/**
 * Where a run's job is built: the payload a worker receives (schema/job.ts
 * RunJob) from a planned run and what every job of its sweep shares (the
 * template). Submit, retry and --until-confident all build jobs here.
 */
import type { JobBuild, RunJob } from '../schema/job.js';
import { DEFAULT_GPUS_WAIT_S, pointGpus } from '../schema/sweep.js';
import type { Plan, PlannedRun } from '../sweep/expand.js';

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
  /** The hash of the sweep's definition in Redis (queue/sweep-definition.ts), carried by every job; absent: none. */
  definition?: string | null;
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
    ...(t.definition ? { definition: t.definition } : {}),
  };
}
