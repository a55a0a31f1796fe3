import { loadSweepFile } from '../sweep/load.js';
import { planSweep } from '../sweep/expand.js';
import { buildReports, formatBuilds } from '../queue/format-builds.js';
import { DEFAULT_GPUS_WAIT_S } from '../schema/sweep.js';
import { databaseUrl, databaseUrlIsSet } from '../config.js';
import { redactUrl } from '../util/redact.js';

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
  /** Stored with the sweep: `sweep list --label`, `results compare --label` find it by this. */
  label?: string;
  /** Run again the sweep's runs that ended with these outcomes (true: every outcome but done). */
  retry?: string | true;
}

export async function sweepSubmit(file: string, opts: SweepSubmitOptions): Promise<void> {
  // Loaded only when asked for: a plain submit (or dry run) should not pay for the job schema.
  const retry = opts.retry === undefined ? undefined : (await import('../schema/job.js')).parseRetryStatuses(opts.retry === true ? undefined : opts.retry, '--retry');
  const sweep = await loadSweepFile(file);
  const plan = planSweep(sweep, { file, allowLarge: opts.allowLarge ?? false, ...(opts.source !== undefined ? { sourceDir: opts.source } : {}) });
  const builds = buildReports(plan);
  if (opts.dryRun) {
    const report = { sweepId: plan.sweepId, name: sweep.name, pool: sweep.pool, points: plan.points.length, jobs: plan.runs.length, builds, dryRun: true };
    print(opts.json, report, `sweep ${plan.sweepId} (${sweep.name}): ${plan.points.length} points, ${plan.runs.length} jobs (dry run: nothing enqueued)\n${formatBuilds(builds)}`);
    return;
  }
  // Loaded only once the file is valid: a refusal should not pay for Prisma and BullMQ (about 0.7 s).
  const [{ submitPlan }, { runGpus }, { withDb, withRedis }, { gpusWarning, livePools, mostLiveGpus, noWorkerWarning }] = await Promise.all([
    import('../queue/submit.js'),
    import('../queue/job.js'),
    import('./context.js'),
    import('../../worker/heartbeat.js'),
  ]);
  await withRedis((redis) =>
    withDb(async (db) => {
      const report = await submitPlan(db, redis, plan, file, { ...(opts.label !== undefined ? { label: opts.label } : {}), ...(retry ? { retry } : {}) });
      const database = await databaseOfPlan();
      const line = `${submitLine(report, sweep.name)}\n${database.line}`;
      // A sweep sent to a pool no live worker serves just waits: say so at once (a misspelt pool, a worker not started).
      const waiting = report.enqueued + report.alreadyQueued + (report.retry ? Object.values(report.retry.retried).reduce((a, b) => a + b, 0) + report.retry.requeued : 0);
      // And points of more GPUs than any live worker of the pool owns end as unsatisfiable after gpus_wait_s: say so too.
      const warning =
        waiting > 0
          ? (noWorkerWarning(report.pool, await livePools(redis)) ??
            gpusWarning(report.pool, plan.runs.map(runGpus), await mostLiveGpus(redis, report.pool), sweep.gpus_wait_s ?? DEFAULT_GPUS_WAIT_S))
          : null;
      if (warning) process.stderr.write(warning + '\n');
      if (!opts.untilConfident) {
        print(opts.json, { ...report, name: sweep.name, jobs: report.runs, warning, database: database.json }, line);
        return;
      }
      process.stderr.write(line + '\n');
      const { untilConfident } = await import('../queue/until-confident.js');
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
          process.stdout.write(JSON.stringify({ ...report, name: sweep.name, jobs: report.runs, database: database.json, untilConfident: { ...rest, rows: comparison.rows } }) + '\n');
        } else {
          process.stdout.write(`${line}\nuntil-confident: ${a.stoppedBecause}; ${a.extraRuns} extra run(s) in ${a.rounds.length} round(s)\n${formatComparison(a.comparison)}\n`);
        }
      } finally {
        process.off('SIGINT', stop);
      }
    }),
  );
}

/**
 * Where this submit recorded the plan, in one line. A submit without DATABASE_URL writes ./moefarm.db of the
 * current folder, which may not be the collector's database: the collector records the plan from the jobs
 * anyway (queue/sweep-definition.ts), and this line lets the user see the two differ.
 */
async function databaseOfPlan(): Promise<{ line: string; json: { provider: string; location: string; default: boolean } }> {
  const { parseDatabaseUrl } = await import('../db/target.js');
  const set = databaseUrlIsSet();
  const target = parseDatabaseUrl(databaseUrl());
  const location = target.provider === 'sqlite' ? target.location : redactUrl(target.location);
  const where = `${target.provider === 'sqlite' ? 'SQLite' : 'Postgres'} ${location}`;
  const line =
    `plan recorded in ${where}` +
    (set ? ' (DATABASE_URL)' : ' (DATABASE_URL is not set: the default file:./moefarm.db)') +
    '; the collector records it in its own database from the jobs';
  return { line, json: { provider: target.provider, location, default: !set } };
}

type Report = Awaited<ReturnType<typeof import('../queue/submit.js').submitPlan>>;

function counts(byStatus: Record<string, number>): string {
  return Object.entries(byStatus).map(([k, v]) => `${k} ${v}`).join(', ');
}

/** What a submission did, in one paragraph: the jobs, the runs it left alone and why, the label, the builds. */
function submitLine(report: Report, name: string): string {
  const ended = Object.values(report.alreadyEnded).reduce((a, b) => a + b, 0);
  const retried = report.retry ? Object.values(report.retry.retried).reduce((a, b) => a + b, 0) : 0;
  const parts = [
    `sweep ${report.sweepId} (${name}): ${report.points} points, ${report.runs} jobs on pool ${report.pool}; ` +
      (report.alreadySubmitted ? 'already submitted; ' : '') +
      `enqueued ${report.enqueued} (${report.alreadyQueued} already queued, ${report.alreadyDone} already done)` +
      (report.restored ? `; ${report.restored} of them Redis remembered as finished, with no outcome in the database: run again` : ''),
  ];
  if (report.label !== null) parts.push(`label ${report.label}${report.relabelledFrom !== null ? ` (was ${report.relabelledFrom})` : ''}`);
  if (report.retry) parts.push(`retried ${retried}${retried ? ` (${counts(report.retry.retried)})` : ''}${report.retry.requeued ? `, re-enqueued ${report.retry.requeued} queued run(s) that had no job` : ''}`);
  if (report.retry?.skipped.length) parts.push(`not retried (a collector holds their outcome message): ${report.retry.skipped.join(', ')}`);
  if (ended > 0) parts.push(`${ended} ended without a result (${counts(report.alreadyEnded)}): moefarm sweep retry ${report.sweepId} runs them again`);
  return `${parts.join('; ')}\n${formatBuilds(report.builds)}`;
}

function print(json: boolean | undefined, value: unknown, line: string): void {
  process.stdout.write((json ? JSON.stringify(value) : line) + '\n');
}
