/**
 * Queue names and the farm's own Redis keys. One run queue per worker pool; one results queue for the
 * collector; a sweep's cancel mark (queue/cancel.ts); the workers' heartbeats (worker/heartbeat.ts writes
 * them, `moefarm workers` reads them); the regressions already sent (notify/notifier.ts). The source bundles' keys stay in source/store.ts, beside the Lua
 * scripts that build the same names inside Redis.
 */
import { queuePrefix } from '../config.js';

export const RESULTS_QUEUE = 'results';

export function runQueueName(pool: string): string {
  return `run.${pool}`;
}

/** Redis set of every pool that ever had a sweep submitted: the collector watches their failed jobs. */
export function poolsKey(prefix = queuePrefix()): string {
  return `${prefix}:pools`;
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
