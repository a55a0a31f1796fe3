/**
 * Job options shared by producers. Why these numbers:
 * - run jobs: 3 attempts for transient failures (a worker killed mid-run is
 *   a stall, handled by BullMQ's stalled-job check, not counted here);
 *   permanent failures are reported as outcomes and never thrown.
 * - completed jobs are kept 7 days so a re-submitted sweep finds their ids
 *   and adds nothing (the database plan is the lasting guard).
 * - result messages retry for as long as the database is away, backing off
 *   up to 30 s: a result stays in Redis until its write has committed.
 */
import type { JobsOptions } from 'bullmq';

export const RUN_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 200_000 },
  removeOnFail: false,
};

export const RESULT_JOB_OPTIONS: JobsOptions = {
  attempts: 1_000_000,
  backoff: { type: 'capped' },
  removeOnComplete: { age: 24 * 3600, count: 200_000 },
  removeOnFail: false,
};

/** Backoff of result writes: 0.5 s doubling, at most 30 s. */
export function cappedBackoff(attemptsMade: number): number {
  return Math.min(500 * 2 ** Math.max(0, attemptsMade - 1), 30_000);
}
