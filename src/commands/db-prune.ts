/** `moefarm db prune`: delete sweeps (submitted before a date, or one by id) with their runs and results; --dry-run says what would go. */
import { pruneSweeps } from '../db/prune.js';
import { ExitError } from '../errors.js';
import { renderTable } from '../util/table.js';
import { withDb } from './context.js';

export interface DbPruneOptions {
  before?: Date;
  sweep?: string;
  label?: string;
  dryRun?: boolean;
  json?: boolean;
}

export async function dbPrune(opts: DbPruneOptions): Promise<void> {
  const report = await withDb((db) =>
    pruneSweeps(
      db,
      {
        ...(opts.before !== undefined ? { until: opts.before } : {}),
        ...(opts.sweep !== undefined ? { id: opts.sweep } : {}),
        ...(opts.label !== undefined ? { label: opts.label } : {}),
      },
      opts.dryRun ?? false,
    ),
    { mustExist: true },
  );
  if (opts.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
    return;
  }
  const lines: string[] = [];
  const verb = report.dryRun ? 'would delete' : 'deleted';
  lines.push(`${verb} ${report.sweeps.length} sweep(s), ${report.runs} run(s), ${report.results} result(s)${report.dryRun ? ' (dry run: nothing was deleted)' : ''}`);
  if (report.sweeps.length) {
    lines.push(renderTable(['sweep', 'name', 'label', 'created (UTC)', 'runs', 'results'], report.sweeps.map((s) => [s.id, s.name, s.label ?? '', s.createdAt.slice(0, 19).replace('T', ' '), s.runs, s.results])));
  }
  for (const u of report.unfinished) lines.push(`kept sweep ${u.id}: ${u.queued} run(s) still without an outcome (moefarm sweep cancel ${u.id} first)`);
  process.stdout.write(lines.join('\n') + '\n');
  // The one sweep asked for could not go: that is a failure, not a quiet success.
  if (opts.sweep !== undefined && report.unfinished.length > 0 && !report.dryRun) {
    throw new ExitError(`db prune --sweep ${opts.sweep}: not deleted, ${report.unfinished[0]!.queued} run(s) still without an outcome; cancel it first (moefarm sweep cancel ${opts.sweep})`, 1);
  }
}
