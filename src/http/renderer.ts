/**
 * The HTTP server's side of the render thread (http/render-thread.ts): sends
 * page requests, matches replies, merges identical requests in flight, and
 * starts the thread again if it dies (the requests it held fail with 500).
 * It keeps each page it served encoded, with the data stamp it was rendered
 * at; the thread answers "unchanged" while the stamp holds, so a page of
 * 240 KB is neither copied from the thread nor encoded again per request
 * (both were on this loop, the one /healthz is answered on).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { projectRoot } from '../config.js';
import type { Page, PageRequest } from './pages.js';

/** A page as it goes out: the body encoded once, however many times it is sent. */
export interface ServedPage {
  status: number;
  type: string;
  body: Buffer;
  csp?: string;
}

/** Pages kept encoded here, with the data stamp they were rendered at. */
const KEPT = 64;
import type { RenderMessage, RenderReply } from './render-thread.js';

/**
 * The thread's script: beside this module when it runs compiled (dist/src/http/), else (the tests import the
 * TypeScript source, which a worker thread cannot load) the compiled one in dist/, built by `npm run build`.
 */
function threadScript(): string {
  const here = join(dirname(fileURLToPath(import.meta.url)), 'render-thread.js');
  return existsSync(here) ? here : join(projectRoot, 'dist', 'src', 'http', 'render-thread.js');
}

export class Renderer {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly waiting = new Map<number, { key: string; resolve: (p: ServedPage) => void; reject: (e: Error) => void }>();
  private readonly inFlight = new Map<string, Promise<ServedPage>>();
  private readonly kept = new Map<string, { stamp: string; page: ServedPage }>();

  constructor(
    private readonly dbUrl: string,
    private readonly log: (line: string) => void,
  ) {}

  render(request: PageRequest): Promise<ServedPage> {
    const key = JSON.stringify(request);
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.send(key, request).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private send(key: string, request: PageRequest): Promise<ServedPage> {
    const worker = this.thread();
    const id = ++this.seq;
    return new Promise<ServedPage>((resolve, reject) => {
      this.waiting.set(id, { key, resolve, reject });
      worker.postMessage({ id, request, have: this.kept.get(key)?.stamp ?? null } satisfies RenderMessage);
    });
  }

  private received(reply: RenderReply): void {
    const w = this.waiting.get(reply.id);
    if (!w) return;
    this.waiting.delete(reply.id);
    if ('error' in reply) return w.reject(new Error(reply.error));
    const kept = this.kept.get(w.key);
    if ('unchanged' in reply && kept) return w.resolve(kept.page);
    if (!('page' in reply)) return w.reject(new Error('the render thread said unchanged for a page this server does not hold'));
    const page = encode(reply.page);
    this.kept.delete(w.key);
    this.kept.set(w.key, { stamp: reply.stamp, page });
    if (this.kept.size > KEPT) this.kept.delete(this.kept.keys().next().value!);
    w.resolve(page);
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(threadScript(), { workerData: { dbUrl: this.dbUrl } });
    worker.on('message', (reply: RenderReply) => this.received(reply));
    const gone = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = null;
      for (const w of this.waiting.values()) w.reject(new Error(`the render thread ${why}`));
      this.waiting.clear();
    };
    worker.on('error', (err) => {
      this.log(`http: render thread: ${err.stack ?? err.message}`);
      gone(`failed: ${err.message}`);
    });
    worker.on('exit', (code) => gone(`exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    for (const w of this.waiting.values()) w.reject(new Error('the server is closing'));
    this.waiting.clear();
    await worker.terminate();
  }
}

function encode(p: Page): ServedPage {
  return { status: p.status, type: p.type, body: Buffer.from(p.body, 'utf8'), ...(p.csp ? { csp: p.csp } : {}) };
}
