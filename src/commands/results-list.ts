import { UsageError } from '../errors.js';
import { RUN_STATUSES } from '../schema/job.js';
import { renderTable, type Cell } from '../util/table.js';
import { withDb } from './context.js';
import { variantLabel } from '../sweep/tune.js';

/** What --status may name: a run still waiting, or one of its outcomes. */
const LISTABLE_STATUSES: readonly string[] = ['queued', ...RUN_STATUSES];

export async function resultsList(opts: { sweep?: string; variant?: string; status?: string; limit: number; json?: boolean }): Promise<void> {
  if (opts.status !== undefined && !LISTABLE_STATUSES.includes(opts.status)) {
    throw new UsageError(`--status: expected one of ${LISTABLE_STATUSES.join(', ')}, got "${opts.status}"`);
  }
  const runs = await withDb((db) =>
    db.run.findMany({
      where: {
        ...(opts.sweep ? { sweepId: opts.sweep } : {}),
        ...(opts.status ? { status: opts.status } : {}),
        ...(opts.variant ? { results: { some: { variant: opts.variant } } } : {}),
      },
      include: { results: { select: { build: true, variant: true, tune: true, median: true, p10: true, p90: true, n: true, sourceHash: true, joulesPerForward: true, meanPowerW: true } } },
      orderBy: { createdAt: 'desc' },
      take: opts.limit,
    }),
  { mustExist: true },
  );
  if (opts.json) {
    process.stdout.write(JSON.stringify(runs.map(({ stdoutTail: _o, stderrTail: _e, ...r }) => r), null, 2) + '\n');
    return;
  }
  const rows = runs.flatMap((r): Cell[][] => {
    const base: Cell[] = [r.id, r.status, r.workerId ?? ''];
    if (r.results.length === 0) return [[...base, '', '', '', null, null, null, (r.reason ?? '').slice(0, 80)]];
    return r.results.map((x) => [...base, x.build, x.sourceHash.slice(0, 12), variantLabel(x.variant, x.tune), x.median, x.p10, x.p90, r.flags]);
  });
  process.stdout.write(renderTable(['run', 'status', 'worker', 'build', 'source', 'variant', 'median_us', 'p10_us', 'p90_us', 'flags/reason'], rows) + '\n');
}
