/**
 * Cancelling a sweep, as Redis sees it. `sweep cancel` removes the sweep's
 * waiting jobs and sets a cancel key; a worker checks the key before it
 * starts a job of the sweep and polls it while the job runs (worker.ts), and
 * stops the binary when it appears. The key outlives every job that could
 * still be handed out (completed run jobs are kept 7 days, queue/options.ts),
 * and goes when the sweep is given work again (retry, re-submit, repetitions).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import { cancelKey, poolRunQueues } from './names.js';

const CANCEL_TTL_S = 7 * 24 * 3600;

/** Marks the sweep cancelled for every worker; `at` (ms since epoch) is shown in the runs' reasons. */
export async function requestCancel(redis: Redis, sweepId: string, at: number): Promise<void> {
  await redis.set(cancelKey(sweepId), String(at), 'EX', CANCEL_TTL_S);
}

/** When the sweep was cancelled (ms since epoch), or null. */
export async function cancelledAt(redis: Redis, sweepId: string): Promise<number | null> {
  const v = await redis.get(cancelKey(sweepId));
  return v === null ? null : Number(v);
}

/** The sweep gets work again: its new jobs must run. */
export async function clearCancel(redis: Redis, sweepId: string): Promise<void> {
  await redis.del(cancelKey(sweepId));
}

/**
 * Removes these runs' jobs from the pool's queue where they are not being run (waiting, delayed,
 * prioritised, or finished and kept). Returns the ids that were removed; a job a worker holds (locked)
 * stays, and its worker stops it through the cancel key.
 */
export async function removeJobs(redis: Redis, pool: string, runIds: readonly string[]): Promise<Set<string>> {
  const removed = new Set<string>();
  // Every queue of the pool (one per GPU count, queue/names.ts); a job is in one of them.
  for (const { name } of await poolRunQueues(redis, pool)) {
    const queue = new Queue(name, { connection: redis, prefix: queuePrefix() });
    try {
      const left = runIds.filter((id) => !removed.has(id));
      // Queue.remove is one script per job; batches of them go out together.
      const BATCH = 200;
      for (let i = 0; i < left.length; i += BATCH) {
        const batch = left.slice(i, i + BATCH);
        const res = await Promise.all(batch.map((id) => queue.remove(id)));
        batch.forEach((id, j) => {
          if (res[j] === 1) removed.add(id);
        });
      }
    } finally {
      await queue.close();
    }
  }
  return removed;
}

/** Whether a job of this run exists in the pool's queue in a state a worker is running it. */
export async function activeJobs(redis: Redis, pool: string, runIds: readonly string[]): Promise<Set<string>> {
  const wanted = new Set(runIds);
  const out = new Set<string>();
  for (const { name } of await poolRunQueues(redis, pool)) {
    const queue = new Queue(name, { connection: redis, prefix: queuePrefix() });
    try {
      for (const j of await queue.getActive(0, -1)) if (j.id && wanted.has(j.id)) out.add(j.id);
    } finally {
      await queue.close();
    }
  }
  return out;
}
