/**
 * Alerts (`moefarm serve --notify URL [--notify-digest]`): when a sweep is
 * finished (its last run has an outcome), its confirmed regressions
 * (notify/regressions.ts) are POSTed as JSON to the webhook: one message per
 * regression, or with the digest one per sweep that has any.
 *
 * The collector is never held up by it. The collector's hook only puts the
 * sweep id on a bounded list (at most MAX_PENDING sweeps; past that the
 * oldest is dropped, with a warning) and returns; the analysis runs in a
 * worker thread with its own database connection (analyse-thread.ts), and
 * the sends are plain asynchronous requests with a timeout, retried with
 * exponential backoff on a network error, a 5xx or a 429 (not on another
 * 4xx: that is the receiver refusing the message).
 *
 * A regression is sent once: its key (notify/regressions.ts) is claimed in
 * Redis (SET NX, kept 90 days) before the send, so a second collector, a
 * restart or the same sweep finishing again after `--until-confident` adds
 * runs does not send it again; a send that fails for good gives the claim
 * back, so a later finish may try again.
 *
 * The URL is a secret (chat webhooks carry their token in the path): no log
 * line shows more of it than its scheme and host (webhookOrigin), and
 * credentials in it (https://user:pass@host/…) go in an Authorization header.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Redis } from 'ioredis';
import { projectRoot, queuePrefix } from '../config.js';
import { sha256 } from '../util/hash.js';
import type { Log } from '../util/log.js';
import type { AnalyseMessage, AnalyseReply } from './analyse-thread.js';
import { regressionText, type Regression, type SweepRegressions } from './regressions.js';

/** Finished sweeps waiting for analysis, at most. */
export const MAX_PENDING = 100;
/** How long a sent regression is remembered, s. */
const CLAIM_TTL_S = 90 * 86_400;

export interface NotifierOptions {
  url: string;
  /** One message per sweep with regressions (default: one per regression). */
  digest: boolean;
  dbUrl: string;
  /** For the once-only claims. */
  redis: Redis;
  log: Log;
  /** Tries per message (default 6: the first and 5 retries). */
  attempts?: number;
  /** First retry delay, ms, doubled each time up to 60 s (default 1000; MOEFARM_NOTIFY_BACKOFF_MS). */
  backoffMs?: number;
  /** Per request, ms (default 10000). */
  timeoutMs?: number;
  maxPending?: number;
}

/** What a log line may say of a webhook URL: its scheme and host, nothing of its path, query or credentials. */
export function webhookOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return '(webhook)';
  }
}

function threadScript(): string {
  const here = join(dirname(fileURLToPath(import.meta.url)), 'analyse-thread.js');
  return existsSync(here) ? here : join(projectRoot, 'dist', 'src', 'notify', 'analyse-thread.js');
}

export class Notifier {
  private readonly pending: string[] = [];
  private running: Promise<void> | null = null;
  private thread: Worker | null = null;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (r: SweepRegressions) => void; reject: (e: Error) => void }>();
  private closed = false;
  private readonly stop = new AbortController();
  private readonly target: { url: string; headers: Record<string, string> };
  /** Messages sent (2xx), and given up on. */
  sent = 0;
  failed = 0;
  dropped = 0;

  constructor(private readonly opts: NotifierOptions) {
    const u = new URL(opts.url);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'moefarm-notify' };
    if (u.username || u.password) {
      headers['authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
      u.username = '';
      u.password = '';
    }
    this.target = { url: u.toString(), headers };
  }

  /** The collector's hook: never throws, never waits. */
  sweepFinished(sweepId: string): void {
    if (this.closed || this.pending.includes(sweepId)) return;
    if (this.pending.length >= (this.opts.maxPending ?? MAX_PENDING)) {
      const gone = this.pending.shift()!;
      this.dropped++;
      this.opts.log.warn({ event: 'notify', sweepId: gone }, `notify: more than ${this.opts.maxPending ?? MAX_PENDING} finished sweeps wait for analysis; ${gone} is dropped (its regressions are not sent)`);
    }
    this.pending.push(sweepId);
    this.running ??= this.drain().finally(() => (this.running = null));
  }

  private async drain(): Promise<void> {
    for (let id = this.pending.shift(); id !== undefined && !this.closed; id = this.pending.shift()) {
      try {
        await this.handle(id);
      } catch (err) {
        if (!this.closed) this.opts.log.error({ event: 'notify', sweepId: id, reason: this.safe((err as Error).message) }, `notify: sweep ${id}: ${this.safe((err as Error).message)}`);
      }
    }
  }

  private async handle(sweepId: string): Promise<void> {
    const found = await this.analyse(sweepId);
    if (found.regressions.length === 0) return;
    const claimed: Regression[] = [];
    for (const r of found.regressions) if (await this.claim(r.key)) claimed.push(r);
    if (claimed.length === 0) return;
    const messages = this.opts.digest
      ? [{ keys: claimed.map((r) => r.key), body: { event: 'regressions', sweep: found.sweep, count: claimed.length, regressions: claimed, text: digestText(found.sweep, claimed) } }]
      : claimed.map((r) => ({ keys: [r.key], body: { event: 'regression', sweep: found.sweep, regression: r, text: regressionText(found.sweep, r) } }));
    for (const m of messages) {
      const ok = await this.send(m.body, sweepId);
      if (!ok) for (const k of m.keys) await this.release(k);
    }
  }

  private analyse(sweepId: string): Promise<SweepRegressions> {
    const t = this.worker();
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      t.postMessage({ id, sweepId } satisfies AnalyseMessage);
    });
  }

  private worker(): Worker {
    if (this.thread) return this.thread;
    const t = new Worker(threadScript(), { workerData: { dbUrl: this.opts.dbUrl } });
    t.on('message', (r: AnalyseReply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if ('error' in r) w.reject(new Error(r.error));
      else w.resolve(r.result);
    });
    const gone = (why: string) => {
      if (this.thread !== t) return;
      this.thread = null;
      for (const w of this.waiting.values()) w.reject(new Error(`the analysis thread ${why}`));
      this.waiting.clear();
    };
    t.on('error', (err) => gone(`failed: ${err.message}`));
    t.on('exit', (code) => gone(`exited (code ${code})`));
    // The collector's process exits when it is done, whatever this thread is doing.
    t.unref();
    this.thread = t;
    return t;
  }

  private claimKey(key: string): string {
    return `${queuePrefix()}:notified:${sha256(key).slice(0, 32)}`;
  }

  private async claim(key: string): Promise<boolean> {
    return (await this.opts.redis.set(this.claimKey(key), '1', 'EX', CLAIM_TTL_S, 'NX')) === 'OK';
  }

  private async release(key: string): Promise<void> {
    await this.opts.redis.del(this.claimKey(key)).catch(() => 0);
  }

  /** POST with retries; true once the receiver took it (2xx). */
  private async send(body: object, sweepId: string): Promise<boolean> {
    const attempts = this.opts.attempts ?? 6;
    const first = this.opts.backoffMs ?? envBackoff() ?? 1000;
    const payload = JSON.stringify(body);
    const where = webhookOrigin(this.opts.url);
    let last = '';
    for (let i = 1; i <= attempts && !this.closed; i++) {
      try {
        const res = await fetch(this.target.url, {
          method: 'POST',
          headers: this.target.headers,
          body: payload,
          signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs ?? 10_000), this.stop.signal]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.sent++;
          this.opts.log.info({ event: 'notify', sweepId, status: res.status, attempt: i, webhook: where }, `notify: sent ${(body as { event: string }).event} of sweep ${sweepId} to ${where} (HTTP ${res.status}, attempt ${i})`);
          return true;
        }
        last = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) break;
      } catch (err) {
        last = this.safe((err as Error).message);
      }
      if (i < attempts && !this.closed) {
        const wait = Math.min(60_000, first * 2 ** (i - 1));
        this.opts.log.warn({ event: 'notify', sweepId, attempt: i, reason: last, retryInMs: wait, webhook: where }, `notify: ${where} answered ${last}; retrying in ${wait} ms`);
        await sleep(wait, undefined, { signal: this.stop.signal }).catch(() => undefined);
      }
    }
    this.failed++;
    if (!this.closed) this.opts.log.error({ event: 'notify', sweepId, reason: last, webhook: where }, `notify: gave up on sweep ${sweepId} at ${where}: ${last}`);
    return false;
  }

  /** A message with every spelling of the URL taken out. */
  private safe(text: string): string {
    let t = text;
    for (const u of [this.opts.url, this.target.url]) t = t.split(u).join(webhookOrigin(this.opts.url));
    return t;
  }

  /** Stops taking sweeps; waits up to `graceMs` for the one in hand, then abandons it. Idempotent. */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending.length = 0;
    if (this.running) await Promise.race([this.running, sleep(graceMs)]);
    this.stop.abort();
    const t = this.thread;
    this.thread = null;
    for (const w of this.waiting.values()) w.reject(new Error('the notifier is closing'));
    this.waiting.clear();
    if (t) await t.terminate();
  }
}

function envBackoff(): number | undefined {
  const v = Number(process.env['MOEFARM_NOTIFY_BACKOFF_MS']);
  return Number.isInteger(v) && v >= 1 ? v : undefined;
}

function digestText(sweep: SweepRegressions['sweep'], rs: Regression[]): string {
  return [`moefarm: ${rs.length} regression(s) in sweep ${sweep.id} (${sweep.name}):`, ...rs.map((r) => `- ${regressionText(sweep, r).replace(/^moefarm: regression in sweep \S+ \([^)]*\): /, '')}`)].join('\n');
}
