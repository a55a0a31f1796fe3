/**
 * The farm's read-only web pages over node:http (no framework): the list of
 * sweeps, each sweep's HTML report rendered from the live database, and its
 * comparison as JSON. `moefarm serve --http PORT` runs it beside the
 * collector. It binds 127.0.0.1 unless told otherwise: the pages show
 * everything in the database and have no authentication.
 *
 * This loop only routes: pages are read and rendered in a thread of their own
 * (http/renderer.ts, http/render-thread.ts), cached until the data changes,
 * so /healthz and the collector sharing this loop stay responsive however
 * many reports are asked for (README, "Serving": figures). A URL that cannot
 * be decoded is the client's error (400), never a 500 with a stack trace.
 * Every response carries a Content-Security-Policy; an HTML page its own.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PageRequest } from './pages.js';
import { Renderer } from './renderer.js';

export interface HttpServerOptions {
  /** The database the pages are read from (its URL: the render thread opens its own connection). */
  dbUrl: string;
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
/** Every response that is not an HTML page of its own: nothing may load or run. */
const BASE_CSP = "default-src 'none'; frame-ancestors 'none'";

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  const renderer = new Renderer(opts.dbUrl, log);
  const server = createServer((req, res) => {
    void handle(renderer, req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) log(`http: ${req.method} ${JSON.stringify(req.url)}: ${(err as Error).stack ?? String(err)}`);
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
      (closing ??= (async () => {
        await new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        });
        await renderer.close();
      })()),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, csp = BASE_CSP): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, {
    'content-type': type,
    'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.length,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-security-policy': csp,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

async function handle(renderer: Renderer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${req.method}: only GET and HEAD`);
  const request = route(req.url ?? '/');
  if (request === 'healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
  const page = await renderer.render(request);
  paced(page.body.length, () => send(res, page.status, page.type, page.body, page.csp));
}

/**
 * Bytes of pages handed to sockets per turn of the event loop. A burst of one report resolves every waiting
 * request at once; written in one go, 200 copies of a 240 KB page (49 MB) held the loop for 100-140 ms and
 * /healthz with it. Paced, /healthz and the collector get a turn every few MB.
 */
const BYTES_PER_TURN = 4 << 20;
const sendQueue: Array<[number, () => void]> = [];
let draining = false;

function paced(bytes: number, write: () => void): void {
  sendQueue.push([bytes, write]);
  if (draining) return;
  draining = true;
  setImmediate(drain);
}

function drain(): void {
  let sent = 0;
  while (sendQueue.length > 0 && sent < BYTES_PER_TURN) {
    const [bytes, write] = sendQueue.shift()!;
    sent += bytes;
    try {
      write();
    } catch {
      /* the client went away */
    }
  }
  if (sendQueue.length > 0) setImmediate(drain);
  else draining = false;
}

/** The page a URL asks for; HttpError 400 for a URL that cannot be decoded, 404 for one that names no page. */
function route(raw: string): PageRequest | 'healthz' {
  let url: URL;
  let path: string;
  try {
    url = new URL(raw, 'http://localhost');
    path = decodeURIComponent(url.pathname);
  } catch {
    throw new HttpError(400, 'malformed URL (bad percent-encoding or syntax)');
  }
  if (path === '/healthz') return 'healthz';
  if (path === '/' || path === '/sweeps') return { page: 'index' };
  const m = /^\/sweeps\/([^/]+)\/(report|report\.html|compare\.json)$/.exec(path);
  if (!m) throw new HttpError(404, 'no such page; see /');
  const sweepId = m[1]!;
  if (!SWEEP_ID.test(sweepId)) throw new HttpError(404, 'no such sweep');
  const baseline = url.searchParams.get('baseline');
  const includeFlagged = url.searchParams.get('include-flagged') === '1';
  return { page: m[2] === 'compare.json' ? 'compare' : 'report', sweepId, baseline, includeFlagged };
}
