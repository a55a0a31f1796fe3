import { loadSweepFile } from '../sweep/load.js';
import { planSweep } from '../sweep/expand.js';
import { submitPlan } from '../queue/submit.js';
import { withDb, withRedis } from './context.js';

export interface SweepSubmitOptions {
  dryRun?: boolean;
  allowLarge?: boolean;
  json?: boolean;
}

export async function sweepSubmit(file: string, opts: SweepSubmitOptions): Promise<void> {
  const sweep = await loadSweepFile(file);
  const plan = planSweep(sweep, { file, allowLarge: opts.allowLarge ?? false });
  if (opts.dryRun) {
    const report = { sweepId: plan.sweepId, name: sweep.name, pool: sweep.pool, points: plan.points.length, jobs: plan.runs.length, dryRun: true };
    print(opts.json, report, `sweep ${plan.sweepId} (${sweep.name}): ${plan.points.length} points, ${plan.runs.length} jobs (dry run: nothing enqueued)`);
    return;
  }
  const report = await withRedis((redis) => withDb((db) => submitPlan(db, redis, plan, file)));
  print(
    opts.json,
    { ...report, name: sweep.name, jobs: report.runs },
    `sweep ${report.sweepId} (${sweep.name}): ${report.points} points, ${report.runs} jobs on pool ${report.pool}; ` +
      `enqueued ${report.enqueued} (${report.alreadyQueued} already queued, ${report.alreadyDone} already done)`,
  );
}

function print(json: boolean | undefined, value: unknown, line: string): void {
  process.stdout.write((json ? JSON.stringify(value) : line) + '\n');
}
