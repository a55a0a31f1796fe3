/**
 * Watches one job's sweep for a cancel (moefarm sweep cancel sets a key in
 * Redis, src/queue/cancel.ts): checked once before the job starts, then every
 * `everyMs` while it runs. When the key appears, `signal` aborts, which stops
 * the binary (execa's cancelSignal: SIGTERM, SIGKILL after the grace), and the
 * job ends as `cancelled`. A poll, not a subscription: one EXISTS per half
 * second per worker costs Redis nothing and needs no second connection.
 */
import type { Redis } from 'ioredis';
import { cancelledAt } from '../src/queue/cancel.js';
import { PermanentRunError } from './errors.js';

export const CANCEL_POLL_MS = 500;

export class CancelWatch {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  /** When the sweep was cancelled (ms since epoch); null while it is not. */
  at: number | null = null;

  private constructor(
    private readonly redis: Redis,
    private readonly sweepId: string,
  ) {}

  static async start(redis: Redis, sweepId: string, everyMs = CANCEL_POLL_MS): Promise<CancelWatch> {
    const w = new CancelWatch(redis, sweepId);
    await w.check();
    if (w.at === null) {
      w.timer = setInterval(() => void w.check().catch(() => {}), everyMs);
      w.timer.unref();
    }
    return w;
  }

  private async check(): Promise<void> {
    if (this.at !== null) return;
    const at = await cancelledAt(this.redis, this.sweepId);
    if (at === null) return;
    this.at = at;
    this.stop();
    this.controller.abort(new Error(`sweep ${this.sweepId} cancelled`));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The outcome of a cancelled job: says when the cancel came and how far the job had got. */
  error(phase: 'before it started' | 'while it ran'): PermanentRunError {
    const when = new Date(this.at ?? Date.now()).toISOString();
    const how = phase === 'before it started' ? 'before the run started; nothing was built or run' : `while the run was in flight; the binary was stopped after ${((Date.now() - this.startedAt) / 1000).toFixed(1)} s`;
    return new PermanentRunError('cancelled', `sweep ${this.sweepId} was cancelled at ${when} (moefarm sweep cancel) ${how}`);
  }

  /** Throws the cancelled outcome when the cancel has come. */
  throwIfCancelled(phase: 'before it started' | 'while it ran'): void {
    if (this.at !== null) throw this.error(phase);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
