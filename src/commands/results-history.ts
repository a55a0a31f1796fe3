import { loadHistory, type History } from '../results/history.js';
import { renderCsv, renderTable, type Cell } from '../util/table.js';
import { withDb } from './context.js';

export interface ResultsHistoryOptions {
  point: string;
  variant?: string;
  includeFlagged?: boolean;
  json?: boolean;
  csv?: boolean;
}

const HEADERS = ['point', 'variant', 'order', 'build', 'commit', 'dirty', 'source', 'first_seen', 'runs', 'samples', 'median_us', 'change_%', 'p', 'step', 'annotation'];

function rows(h: History, short: boolean, withEnv: boolean): Cell[][] {
  return h.series.flatMap((s) =>
    s.builds.map((b): Cell[] => [
      `${s.point}${withEnv ? ` [${s.env}]` : ''}`,
      s.variant,
      s.order,
      short ? b.sourceHash.slice(0, 12) : b.sourceHash,
      b.gitCommit === null ? '' : short ? b.gitCommit.slice(0, 10) : b.gitCommit,
      b.dirty ? 'dirty' : '',
      b.label ?? '',
      b.firstSeen === null ? '' : short ? b.firstSeen.slice(0, 19).replace('T', ' ') : b.firstSeen,
      b.runs,
      b.samples,
      b.medianUs,
      b.change === null ? null : Number((b.change * 100).toFixed(2)),
      b.p === null ? '' : b.p < 1e-3 ? b.p.toExponential(1) : b.p.toFixed(3),
      b.step ?? '',
      annotationText(b.annotation, short),
    ]),
  );
}

/** "expected: accepted for the fix of #7", shortened for the table. */
function annotationText(a: History['series'][number]['builds'][number]['annotation'], short: boolean): string {
  if (!a) return '';
  const text = `${a.kind}: ${a.note}`;
  return short && text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

export function formatHistory(h: History): string {
  if (h.series.length === 0) return `no results for point ${h.query.point ?? '?'}${h.query.variant ? ` variant ${h.query.variant}` : ''}`;
  const envs = [...new Set(h.series.map((s) => s.env))];
  const lines = [`history of point ${h.query.point}${h.query.variant ? ` variant ${h.query.variant}` : ''}${envs.length === 1 ? `; environment: ${envs[0]}` : ''}`];
  lines.push(renderTable(HEADERS, rows(h, true, envs.length > 1)));
  const steps = h.series.flatMap((s) =>
    s.builds
      .filter((b) => b.step || b.annotation)
      .map((b) =>
        b.step
          ? `${b.step} at build ${b.sourceHash.slice(0, 12)} (${s.variant}, ${s.point}): ${(b.change! * 100).toFixed(1)}%${b.annotation ? ` (annotated ${b.annotation.kind}: ${b.annotation.note})` : ''}`
          : `build ${b.sourceHash.slice(0, 12)} (${s.variant}, ${s.point}) annotated ${b.annotation!.kind}: ${b.annotation!.note}${b.annotation!.kind === 'invalid' ? ' (left out of step detection)' : ''}`,
      ),
  );
  lines.push(steps.length ? steps.join('\n') : 'no regression or improvement flagged');
  lines.push(h.text);
  const excluded = h.series.reduce((n, s) => n + s.excludedFlagged, 0);
  if (excluded) lines.push(`flagged runs excluded: ${excluded} (--include-flagged to use them)`);
  return lines.join('\n');
}

export async function resultsHistory(opts: ResultsHistoryOptions): Promise<void> {
  const h = await withDb((db) =>
    loadHistory(db, { point: opts.point, ...(opts.variant ? { variant: opts.variant } : {}), includeFlagged: opts.includeFlagged ?? false }),
  { mustExist: true },
  );
  if (opts.json) process.stdout.write(JSON.stringify(h, null, 2) + '\n');
  else if (opts.csv) process.stdout.write(renderCsv(HEADERS, rows(h, false, true).map((r) => r.map((c) => (typeof c === 'number' ? String(c) : c)))) + '\n');
  else process.stdout.write(formatHistory(h) + '\n');
}
