/**
 * Queue names and the farm's own Redis keys. One run queue per worker pool; one results queue for the
 * collector; a sweep's cancel mark (queue/cancel.ts); the workers' heartbeats (worker/heartbeat.ts writes
 * them, `moefarm workers` reads them). The source bundles' keys stay in source/store.ts, beside the Lua
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
