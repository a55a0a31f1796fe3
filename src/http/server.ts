/**
 * The farm's read-only web pages over node:http (no framework): the list of
 * sweeps, each sweep's HTML report rendered from the live database, and its
 * comparison as JSON. `moefarm serve --http PORT` runs it beside the
 * collector. It binds 127.0.0.1 unless told otherwise: the pages show
 * everything in the database and have no authentication.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { renderReport } from '../report/html.js';
import { escapeHtml } from '../report/escape.js';
import { compareSweep, parseBaseline } from '../results/compare.js';
import { loadSweepResults } from '../results/load.js';
import { buildReportData } from '../results/report-data.js';
import { listSweeps } from '../db/sweeps.js';

export interface HttpServerOptions {
  db: Db;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  log?: (line: string) => void;
}

export interface HttpServer {
  url: string;
  port: number;
  close: () => Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const SWEEP_ID = /^[A-Za-z0-9_-]{1,64}$/;

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  const server = createServer((req, res) => {
    void handle(opts.db, req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : err instanceof UsageError ? 404 : 500;
      if (status === 500) log(`http: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
      send(res, status, 'text/plain; charset=utf-8', `${status === 500 ? 'internal error' : (err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => resolveListen());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close: () =>
      (closing ??= new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      })),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function handle(db: Db, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${req.method}: only GET and HEAD`);
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
  if (path === '/' || path === '/sweeps') return send(res, 200, 'text/html; charset=utf-8', await indexPage(db), { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" });
  const m = /^\/sweeps\/([^/]+)\/(report|report\.html|compare\.json)$/.exec(path);
  if (!m) throw new HttpError(404, `no page at ${path}; see /`);
  const id = decodeURIComponent(m[1]!);
  if (!SWEEP_ID.test(id)) throw new HttpError(404, 'no such sweep');
  const baseline = parseBaseline(url.searchParams.get('baseline') ?? undefined);
  const includeFlagged = url.searchParams.get('include-flagged') === '1';
  if (m[2] === 'compare.json') {
    const cmp = compareSweep(await loadSweepResults(db, id), baseline, { includeFlagged });
    return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(cmp, null, 2));
  }
  const report = await buildReportData(db, id, { baseline, includeFlagged });
  return send(res, 200, 'text/html; charset=utf-8', renderReport(report.data));
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
