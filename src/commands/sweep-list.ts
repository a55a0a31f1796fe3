/** `moefarm sweep list`: the recorded sweeps, newest first, with how their runs stand. */
import { listSweeps, type SweepFilter } from '../db/sweeps.js';
import { renderTable, type Cell } from '../util/table.js';
import { withDb } from './context.js';

export interface SweepListOptions {
  label?: string;
  since?: Date;
  until?: Date;
  limit: number;
  json?: boolean;
}

export async function sweepList(opts: SweepListOptions): Promise<void> {
  const filter: SweepFilter = {
    ...(opts.label !== undefined ? { label: opts.label } : {}),
    ...(opts.since !== undefined ? { since: opts.since } : {}),
    ...(opts.until !== undefined ? { until: opts.until } : {}),
  };
  const list = await withDb((db) => listSweeps(db, filter, opts.limit), { mustExist: true });
  if (opts.json) {
    process.stdout.write(JSON.stringify(list.map((s) => ({ ...s, createdAt: s.createdAt.toISOString() })), null, 2) + '\n');
    return;
  }
  if (list.length === 0) {
    process.stdout.write('no sweep matches\n');
    return;
  }
  const rows = list.map((s): Cell[] => [s.id, s.name, s.label ?? '', s.pool, s.createdAt.toISOString().slice(0, 19).replace('T', ' '), s.runs, s.done, s.failed, s.cancelled, s.queued]);
  process.stdout.write(renderTable(['sweep', 'name', 'label', 'pool', 'created (UTC)', 'runs', 'done', 'failed', 'cancelled', 'queued'], rows) + '\n');
  if (list.length === opts.limit) process.stdout.write(`(the newest ${opts.limit}; --limit N for more)\n`);
}
