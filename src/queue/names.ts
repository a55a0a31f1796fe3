/** Queue names. One run queue per worker pool; one results queue for the collector. */
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
