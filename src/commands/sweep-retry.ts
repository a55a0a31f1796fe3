/** `moefarm sweep retry ID [--status …]`: run again the runs that ended with these outcomes (queue/retry.ts says how). */
import { livePools, noWorkerWarning } from '../../worker/heartbeat.js';
import { retryRuns } from '../queue/retry.js';
import { storedTemplate } from '../queue/stored-sweep.js';
import { parseRetryStatuses } from '../schema/job.js';
import { withDb, withRedis } from './context.js';

export async function sweepRetry(id: string, opts: { status?: string; json?: boolean }): Promise<void> {
  const statuses = parseRetryStatuses(opts.status);
  const { report, warning } = await withRedis((redis) =>
    withDb(async (db) => {
      const template = await storedTemplate(db, id, redis);
      const r = await retryRuns(db, redis, template, statuses);
      const queued = Object.values(r.retried).reduce((a, b) => a + b, 0) + r.requeued;
      return { report: r, warning: queued > 0 ? noWorkerWarning(template.pool, await livePools(redis)) : null };
    }, { mustExist: true }),
  );
  if (warning) process.stderr.write(warning + '\n');
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...report, warning }) + '\n');
    return;
  }
  const n = Object.values(report.retried).reduce((a, b) => a + b, 0);
  const lines = [
    n === 0 && report.requeued === 0
      ? `sweep ${id}: no run ended with ${statuses.join(', ')}: nothing to retry`
      : `sweep ${id}: ${n} run(s) back in the queue (${Object.entries(report.retried).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}) under their own ids; ` +
        `what they ended with before is kept (moefarm results list --json: previous)` +
        (report.requeued ? `; ${report.requeued} queued run(s) that had no job enqueued again` : ''),
  ];
  if (report.skipped.length) lines.push(`not retried, a collector holds their outcome message (try again in a moment): ${report.skipped.join(', ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}
