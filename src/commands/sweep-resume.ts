/** `moefarm sweep resume ID`: enqueue every run the database holds as unfinished, whatever Redis remembers (queue/requeue.ts). */
import { livePools, noWorkerWarning } from '../../worker/heartbeat.js';
import { resumeSweep } from '../queue/requeue.js';
import { storedTemplate } from '../queue/stored-sweep.js';
import { withDb, withRedis } from './context.js';

export async function sweepResume(id: string, opts: { json?: boolean }): Promise<void> {
  const { report, warning } = await withRedis((redis) =>
    withDb(async (db) => {
      const r = await resumeSweep(db, redis, await storedTemplate(db, id, redis));
      return { report: r, warning: r.enqueued + r.inHand > 0 ? noWorkerWarning(r.pool, await livePools(redis)) : null };
    }, { mustExist: true }),
  );
  if (warning) process.stderr.write(warning + '\n');
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...report, warning }) + '\n');
    return;
  }
  const parts = [
    report.queued === 0
      ? `sweep ${id}: every run has an outcome in the database: nothing to resume`
      : `sweep ${id}: ${report.queued} run(s) without an outcome in the database; enqueued ${report.enqueued}` +
        ` (${report.inHand} already queued, running or waiting for the collector)`,
  ];
  if (report.stale) parts.push(`${report.stale} of them Redis remembered as finished, with no outcome in this database: run again`);
  if (report.bundlesRestored) parts.push(`${report.bundlesRestored} source bundle(s) stored in Redis again from the database`);
  process.stdout.write(parts.join('; ') + '\n');
}
