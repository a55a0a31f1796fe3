/**
 * The render thread: reads the database and renders pages (http/pages.ts) for
 * the HTTP server, off the event loop that serves /healthz and runs the
 * collector. Rendering a report of 80 runs took 1.4 s of that loop; under 200
 * concurrent report requests /healthz waited behind them (a median of 16 s in
 * the probe).
 *
 * Rendered pages are cached by request and by the database's state
 * (pages.ts dataStamp): a page is rendered again only once an outcome has been
 * written since. The server also merges identical requests in flight, so a
 * burst of the same report costs one render.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDb } from '../db/client.js';
import { dataStamp, renderPage, type Page, type PageRequest } from './pages.js';

export interface RenderMessage {
  id: number;
  request: PageRequest;
  /** The data stamp of the copy the server holds, if it holds one: if still current, it is not sent again. */
  have: string | null;
}

export type RenderReply = { id: number; stamp: string; page: Page } | { id: number; stamp: string; unchanged: true } | { id: number; error: string };

/** Pages kept; the oldest goes first. A report is about 250 KB. */
const CACHE_ENTRIES = 64;

const port = parentPort;
if (!port) throw new Error('render-thread.js runs as a worker thread of the HTTP server');
const { dbUrl } = workerData as { dbUrl: string };
const db = await openDb({ url: dbUrl, migrate: false });
const cache = new Map<string, { stamp: string; page: Page }>();

async function handle(m: RenderMessage): Promise<RenderReply> {
  try {
    const key = JSON.stringify(m.request);
    const stamp = await dataStamp(db);
    if (m.have === stamp) return { id: m.id, stamp, unchanged: true };
    const hit = cache.get(key);
    if (hit && hit.stamp === stamp) return { id: m.id, stamp, page: hit.page };
    const page = await renderPage(db, m.request);
    cache.delete(key);
    cache.set(key, { stamp, page });
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    return { id: m.id, stamp, page };
  } catch (err) {
    return { id: m.id, error: (err as Error).stack ?? String(err) };
  }
}

port.on('message', (m: RenderMessage) => {
  void handle(m).then((reply) => port.postMessage(reply));
});
