import { loadSweepFile } from '../sweep/load.js';
import { planSweep } from '../sweep/expand.js';
import { buildReports, formatBuilds } from '../queue/format-builds.js';

export interface SweepSubmitOptions {
  dryRun?: boolean;
  allowLarge?: boolean;
  json?: boolean;
  /** After submitting, wait for outcomes and repeat the runs of UNSURE comparisons until decided or the budget is spent. */
  untilConfident?: boolean;
  /** Most extra runs --until-confident may add (default: as many as the sweep has runs). */
  budget?: number;
  /** The source folder of a sweep without builds: (default: this checkout's csrc/). */
  source?: string;
}

export async function sweepSubmit(file: string, opts: SweepSubmitOptions): Promise<void> {
  const sweep = await loadSweepFile(file);
  const plan = planSweep(sweep, { file, allowLarge: opts.allowLarge ?? false, ...(opts.source !== undefined ? { sourceDir: opts.source } : {}) });
  const builds = buildReports(plan);
  if (opts.dryRun) {
    const report = { sweepId: plan.sweepId, name: sweep.name, pool: sweep.pool, points: plan.points.length, jobs: plan.runs.length, builds, dryRun: true };
    print(opts.json, report, `sweep ${plan.sweepId} (${sweep.name}): ${plan.points.length} points, ${plan.runs.length} jobs (dry run: nothing enqueued)\n${formatBuilds(builds)}`);
    return;
  }
  // Loaded only once the file is valid: a refusal should not pay for Prisma and BullMQ (about 0.7 s).
  const [{ submitPlan }, { withDb, withRedis }] = await Promise.all([import('../queue/submit.js'), import('./context.js')]);
  await withRedis((redis) =>
    withDb(async (db) => {
      const report = await submitPlan(db, redis, plan, file);
      const line =
        `sweep ${report.sweepId} (${sweep.name}): ${report.points} points, ${report.runs} jobs on pool ${report.pool}; ` +
        `enqueued ${report.enqueued} (${report.alreadyQueued} already queued, ${report.alreadyDone} already done)\n${formatBuilds(report.builds)}`;
      if (!opts.untilConfident) {
        print(opts.json, { ...report, name: sweep.name, jobs: report.runs }, line);
        return;
      }
      process.stderr.write(line + '\n');
      const { untilConfident } = await import('../results/adaptive.js');
      const budget = opts.budget ?? plan.runs.length;
      process.stderr.write(`until-confident: waiting for outcomes (needs a collector, moefarm serve, and workers on pool ${report.pool}); budget ${budget} extra run(s)\n`);
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      try {
        const a = await untilConfident(db, redis, plan, { budget, log: (l) => process.stderr.write(l + '\n'), signal: ac.signal });
        const { formatComparison } = await import('./results-compare.js');
        if (opts.json) {
          const { comparison, ...rest } = a;
          process.stdout.write(JSON.stringify({ ...report, name: sweep.name, jobs: report.runs, untilConfident: { ...rest, rows: comparison.rows } }) + '\n');
        } else {
          process.stdout.write(`${line}\nuntil-confident: ${a.stoppedBecause}; ${a.extraRuns} extra run(s) in ${a.rounds.length} round(s)\n${formatComparison(a.comparison)}\n`);
        }
      } finally {
        process.off('SIGINT', stop);
      }
    }),
  );
}

function print(json: boolean | undefined, value: unknown, line: string): void {
  process.stdout.write((json ? JSON.stringify(value) : line) + '\n');
}
