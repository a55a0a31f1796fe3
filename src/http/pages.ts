/**
 * The farm's web pages, each read from the database and rendered whole: the
 * list of sweeps, a sweep's HTML report, its comparison as JSON. Called in
 * the render thread (http/render-thread.ts), never on the collector's loop.
 */
import { createHash } from 'node:crypto';
import { providerOf, type Db } from '../db/client.js';
import { listSweeps } from '../db/sweeps.js';
import { UsageError } from '../errors.js';
import { escapeHtml } from '../report/escape.js';
import { renderReport } from '../report/html.js';
import { compareSweep, parseBaseline } from '../results/compare.js';
import { loadSweepResults } from '../results/load.js';
import { buildReportData } from '../results/report-data.js';

export type PageRequest = { page: 'index' } | { page: 'report' | 'compare'; sweepId: string; baseline: string | null; includeFlagged: boolean };

export interface Page {
  status: number;
  type: string;
  body: string;
  /** Content-Security-Policy of an HTML page. */
  csp?: string;
}

/** The list page has no script at all. */
const INDEX_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export async function renderPage(db: Db, req: PageRequest): Promise<Page> {
  try {
    if (req.page === 'index') return { status: 200, type: 'text/html; charset=utf-8', body: await indexPage(db), csp: INDEX_CSP };
    const baseline = parseBaseline(req.baseline ?? undefined);
    if (req.page === 'compare') {
      const cmp = compareSweep(await loadSweepResults(db, req.sweepId), baseline, { includeFlagged: req.includeFlagged });
      return { status: 200, type: 'application/json; charset=utf-8', body: JSON.stringify(cmp, null, 2) };
    }
    const report = await buildReportData(db, req.sweepId, { baseline, includeFlagged: req.includeFlagged });
    const html = renderReport(report.data);
    return { status: 200, type: 'text/html; charset=utf-8', body: html, csp: reportCsp(html) };
  } catch (err) {
    // No such sweep, a baseline that is not variant=NAME: the user's request, not a fault of the server.
    if (err instanceof UsageError) return { status: 404, type: 'text/plain; charset=utf-8', body: `${err.message}\n` };
    throw err;
  }
}

/**
 * The report's policy: its inline scripts by hash, nothing else executable. (The file itself carries a
 * `<meta>` policy allowing inline scripts, so that it opens from disk; a browser enforces both, so served
 * over HTTP only these exact scripts run.)
 */
export function reportCsp(html: string): string {
  const hashes: string[] = [];
  for (const m of html.matchAll(/<script>([\s\S]*?)<\/script>/g)) hashes.push(`'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  return `default-src 'none'; script-src ${hashes.join(' ') || "'none'"}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}

async function indexPage(db: Db): Promise<string> {
  // The same listing as `moefarm sweep list` (db/sweeps.ts), newest first.
  const sweeps = await listSweeps(db, {}, 200);
  const rows = sweeps.map((s) => {
    const id = encodeURIComponent(s.id);
    return (
      `<tr><td><a href="/sweeps/${id}/report">${escapeHtml(s.name)}</a></td><td><code>${escapeHtml(s.id)}</code></td><td>${escapeHtml(s.label ?? '')}</td>` +
      `<td>${escapeHtml(s.pool)}</td><td class="num">${s.done}/${s.runs}</td><td class="num">${s.failed}</td><td class="num">${s.cancelled}</td><td class="num">${s.queued}</td>` +
      `<td>${escapeHtml(s.createdAt.toISOString().slice(0, 19).replace('T', ' '))}</td><td><a href="/sweeps/${id}/compare.json">json</a></td></tr>`
    );
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moefarm</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}.num{text-align:right}</style>
</head><body><h1>moefarm sweeps</h1>
${sweeps.length === 0 ? '<p>No sweeps in the database yet.</p>' : `<table><thead><tr><th>sweep</th><th>id</th><th>label</th><th>pool</th><th>done</th><th>failed</th><th>cancelled</th><th>waiting</th><th>created (UTC)</th><th></th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`}
</body></html>
`;
}

/**
 * What the database looks like now, for the render cache; any outcome written anywhere changes it (a report
 * shows the history of its points across other sweeps too), so a cached page is never older than the data.
 * SQLite: `PRAGMA data_version`, which changes whenever another connection commits (this one, the render
 * thread's, only reads): constant time (counting runs per status took 160-210 ms over 200,000 runs).
 * Postgres: the number of runs in each status (a run changes status once, its results with it).
 */
export async function dataStamp(db: Db): Promise<string> {
  if (providerOf(db) === 'sqlite') {
    const [row] = await db.$queryRawUnsafe<Array<{ data_version: number | bigint }>>('PRAGMA data_version');
    return `v${String(row?.data_version)}`;
  }
  const rows = await db.run.groupBy({ by: ['status'], _count: { _all: true } });
  return rows
    .map((r) => `${r.status}=${r._count._all}`)
    .sort()
    .join(',');
}
