/**
/**
 * Queue names and the farm's own Redis keys. One results queue for the
 * collector; run queues per worker pool and GPU count: BullMQ hands a job to
 * whichever worker asks first and has no per-job routing, so a job that takes
 * N GPUs waits in a queue of its own, `run.POOL@gN`, which only workers that
 * own at least N GPUs listen on (a worker with n GPUs listens on the queues of
 * 1..n). One-GPU jobs (and CPU jobs) stay in `run.POOL`, the queue every job
 * used before the gpus axis. '@' is not allowed in pool names, so no two
 * pools' queues meet. Besides the queues: a sweep's cancel mark
 * (queue/cancel.ts), the workers' heartbeats (worker/heartbeat.ts writes them,
 * `moefarm workers` reads them), the regressions already sent
 * (notify/notifier.ts), a sweep's definition (queue/sweep-definition.ts) and
 * the lock two submits of one sweep take turns on (queue/submit.ts). The source bundles' keys stay in source/store.ts,
 * beside the Lua scripts that build the same names inside Redis.
 */
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';

export const RESULTS_QUEUE = 'results';

export function runQueueName(pool: string, gpus = 1): string {
  return gpus > 1 ? `run.${pool}@g${gpus}` : `run.${pool}`;
}

/** Redis set of every pool that ever had a sweep submitted: the collector watches their failed jobs. */
export function poolsKey(prefix = queuePrefix()): string {
  return `${prefix}:pools`;
}

/** Redis set of the GPU counts (> 1) a pool's jobs ever asked for: the queues besides run.POOL to watch. */
export function poolGpusKey(pool: string, prefix = queuePrefix()): string {
  return `${prefix}:pool-gpus:${pool}`;
}

/** Records that the pool has jobs taking these GPU counts (before they are enqueued). */
export async function notePoolGpus(redis: Redis, pool: string, counts: Iterable<number>, prefix = queuePrefix()): Promise<void> {
  const several = [...new Set(counts)].filter((n) => n > 1);
  await redis.sadd(poolsKey(prefix), pool);
  if (several.length) await redis.sadd(poolGpusKey(pool, prefix), ...several.map(String));
}

/** Every run queue of the pool: [{gpus: 1, name: run.POOL}, then each GPU count its jobs asked for, ascending]. */
export async function poolRunQueues(redis: Redis, pool: string, prefix = queuePrefix()): Promise<Array<{ gpus: number; name: string }>> {
  const counts = (await redis.smembers(poolGpusKey(pool, prefix))).map(Number).filter((n) => Number.isInteger(n) && n > 1).sort((a, b) => a - b);
  return [1, ...counts].map((gpus) => ({ gpus, name: runQueueName(pool, gpus) }));
}

/** BullMQ's own key for a job's hash; used to tell whether a job id already exists, in one round trip. */
export function jobKey(queue: string, jobId: string, prefix = queuePrefix()): string {
  return `${prefix}:${queue}:${jobId}`;
}

/** BullMQ's own sorted set of a queue's completed or failed job ids (queue/requeue.ts reads a job's state from them). */
export function jobSetKey(queue: string, set: 'completed' | 'failed', prefix = queuePrefix()): string {
  return `${prefix}:${queue}:${set}`;
}

/** Set while a sweep is cancelled: workers check it before and during a job of the sweep. */
export function cancelKey(sweepId: string, prefix = queuePrefix()): string {
  return `${prefix}:cancel:${sweepId}`;
}

/** Redis hash of every worker's last heartbeat snapshot, by worker id (kept after it stops). */
export function workersHashKey(prefix = queuePrefix()): string {
  return `${prefix}:workers`;
}

/** A worker's live key: present while its heartbeat is renewed (it expires HEARTBEAT_TTL_S after the last beat). */
export function workerLiveKey(id: string, prefix = queuePrefix()): string {
  return `${prefix}:worker-alive:${id}`;
}

/** Present once a regression was sent (or while it is being sent) to the webhook: `hash` is a digest of what identifies it. */
export function notifiedKey(hash: string, prefix = queuePrefix()): string {
  return `${prefix}:notified:${hash}`;
}

/** A sweep's definition (queue/sweep-definition.ts): a hash of the compressed plan and its sha256. */
export function definitionKey(sweepId: string, prefix = queuePrefix()): string {
  return `${prefix}:sweepdef:${sweepId}`;
}

/** Held by a submission of the sweep while it writes the plan and enqueues (queue/submit.ts). */
export function submitLockKey(sweepId: string, prefix = queuePrefix()): string {
  return `${prefix}:sweep:${sweepId}:submitting`;
}
