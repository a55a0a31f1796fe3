/**
 * The collector: consumes outcomes from the results queue and commits them to
 * the database. A result leaves Redis only when the processor returns, that
 * is after its transaction has committed; a failed write is retried with
 * backoff for as long as the database is away.
 *
 * When a sweep's last run has its outcome, it releases the sweep's source
 * bundles in Redis (source/store.ts): each expires after a grace period
 * unless another unfinished sweep still needs it.
 *
 * It also closes runs whose jobs failed without an outcome (attempts used up
 * on transient errors, or stalled too often after worker crashes): it scans
 * the run queues' failed sets and records each as `failed` with BullMQ's
 * reason, so no sweep is left waiting on a run that will never report.
 *
 * Each outcome it takes ends in one log line: run, sweep, status, the run's
 * wall time, its worker, and whether it was recorded or a duplicate.
 */
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { bundleGraceSeconds, queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { recordOutcome, recordOutcomes, type RecordResult } from '../db/record.js';
import { OutcomeSchema, RunJobSchema, type ParsedOutcome } from '../schema/job.js';
import { RESULTS_QUEUE, poolsKey, runQueueName } from '../queue/names.js';
import { cappedBackoff } from '../queue/options.js';
import { releaseSweepBundles } from '../source/store.js';
import { formatIssues } from '../sweep/load.js';
import { createLogger, type Log } from '../util/log.js';

export interface CollectorOptions {
  db: Db;
  /** Connection for the BullMQ worker (blocking commands). */
  connection: Redis;
  /** How often failed run jobs are reconciled, ms (default 2000). */
  reconcileEveryMs?: number;
  /**
   * Lock on a result being written, ms (default MOEFARM_LOCK_MS, else 30000):
   * a collector killed mid-write loses it, and another collector (or this one
   * restarted) takes the result over after about this long.
   */
  lockDurationMs?: number;
  /**
   * Most results written in one transaction (default 100). The results queue is consumed with this
   * much concurrency; outcomes that arrive together are written together, and each message is
   * acknowledged only after the transaction holding it has committed.
   */
  batchSize?: number;
  /** Seconds a released source bundle stays in Redis (default MOEFARM_BUNDLE_GRACE_S, else 3600). */
  bundleGraceS?: number;
  onRecorded?: (o: ParsedOutcome, r: RecordResult) => void;
  /** Where the collector logs (default: human-readable lines on stderr). */
  log?: Log;
}

interface Pending {
  outcome: ParsedOutcome;
  resolve: (r: RecordResult) => void;
  reject: (e: unknown) => void;
}

export class Collector {
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private closing: Promise<void> | null = null;
  private reconciling = false;
  private pending: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly batchSize: number;
  private readonly log: Log;
  recorded = 0;
  duplicates = 0;

  constructor(private readonly opts: CollectorOptions) {
    const log = (this.log = opts.log ?? createLogger({ name: 'collector' }));
    const lockDuration = opts.lockDurationMs ?? envLockMs() ?? 30_000;
    this.batchSize = opts.batchSize ?? 200;
    this.worker = new Worker(RESULTS_QUEUE, (job) => this.process(job), {
      connection: opts.connection,
      prefix: queuePrefix(),
      concurrency: this.batchSize,
      lockDuration,
      stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)),
      // A result is never given up for stalling: a collector killed mid-write leaves it, the next one writes it.
      maxStalledCount: 1_000_000,
      settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade) },
    });
    this.worker.on('failed', (job, err) => log.warn({ runId: job?.id ?? null, reason: err.message }, `write of ${job?.id ?? '?'} failed, will retry: ${err.message}`));
    this.worker.on('error', (err) => log.error({ reason: err.message }, `queue: ${err.message}`));
    this.timer = setInterval(() => void this.reconcile().catch((e: Error) => log.error({ reason: e.message }, `reconcile: ${e.message}`)), opts.reconcileEveryMs ?? 2000);
  }

  private async process(job: Job): Promise<RecordResult> {
    const parsed = OutcomeSchema.safeParse(job.data);
    if (!parsed.success) {
      // A malformed message can never be written; keep it in the failed set for a human, with the reason
      // (unrecoverable: retrying it a million times with backoff would change nothing).
      throw new UnrecoverableError(`malformed outcome ${job.id}: ${formatIssues('outcome', parsed.error.issues)}`);
    }
    return new Promise<RecordResult>((resolve, reject) => {
      this.pending.push({ outcome: parsed.data, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Write what has gathered: at once when a batch is full, else after a moment for more to arrive. */
  private scheduleFlush(): void {
    if (this.flushing) return; // the running flush picks them up when it ends
    if (this.pending.length >= this.batchSize) {
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.flushTimer = null;
      void this.flush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        void this.flush();
      }, 5);
    }
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.batchSize);
    this.flushing = (async () => {
      try {
        const results = await recordOutcomes(this.opts.db, batch.map((p) => p.outcome));
        // Before the acknowledgements: whoever waits for the last outcome finds the bundles already released.
        await this.releaseFinished(batch.filter((_, i) => results[i] === 'recorded').map((p) => p.outcome.sweepId));
        batch.forEach((p, i) => {
          const r = results[i]!;
          if (r === 'recorded') this.recorded++;
          else this.duplicates++;
          this.logOutcome(p.outcome, r);
          this.opts.onRecorded?.(p.outcome, r);
          p.resolve(r);
        });
      } catch (err) {
        // Nothing of the batch committed: every message stays in Redis and is retried on its own backoff.
        for (const p of batch) p.reject(err);
      }
    })();
    await this.flushing;
    this.flushing = null;
    if (this.pending.length > 0) this.scheduleFlush();
  }

  private logOutcome(o: ParsedOutcome, r: RecordResult): void {
    const fields = {
      event: 'outcome',
      runId: o.runId,
      sweepId: o.sweepId,
      pool: o.pool,
      status: o.status,
      wallMs: o.startedAt === null ? null : Math.round(o.finishedAt - o.startedAt),
      worker: o.worker?.id ?? null,
      written: r,
      results: o.builds.reduce((n, b) => n + b.output.results.filter((x) => x.stats).length, 0),
      ...(o.reason ? { reason: o.reason } : {}),
    };
    this.log.info(fields, `${o.runId} ${o.status} ${r}`);
  }

  /** Record failed run jobs (no outcome will come from a worker) and drop them from the failed set. */
  async reconcile(): Promise<number> {
    if (this.reconciling) return 0;
    this.reconciling = true;
    let closed = 0;
    const prefix = queuePrefix();
    const results = new Queue(RESULTS_QUEUE, { connection: this.opts.connection, prefix });
    try {
      for (const pool of await this.opts.connection.smembers(poolsKey(prefix))) {
        const queue = new Queue(runQueueName(pool), { connection: this.opts.connection, prefix });
        try {
          for (const job of await queue.getFailed(0, 199)) {
            await this.closeFailedRun(pool, job, results);
            await job.remove();
            closed++;
          }
        } finally {
          await queue.close();
        }
      }
    } finally {
      await results.close().catch(() => {});
      this.reconciling = false;
    }
    return closed;
  }

  private async closeFailedRun(pool: string, job: Job, results: Queue): Promise<void> {
    const data = RunJobSchema.safeParse(job.data);
    if (!data.success) return;
    // A worker may have handed over the run's outcome and died before it could mark the run job done (the job
    // then stalls, and fails once stalled too often). That outcome is still on the results queue under the run
    // id: let it be recorded, rather than a 'failed' that would win the race to the table.
    if ((await results.getJob(data.data.runId)) !== undefined) return;
    const o: ParsedOutcome = {
      runId: data.data.runId,
      sweepId: data.data.sweepId,
      pool,
      job: data.data,
      status: 'failed',
      reason: `gave up after ${job.attemptsMade} attempt(s): ${job.failedReason ?? 'unknown'}`,
      attempts: job.attemptsMade,
      worker: null,
      builds: [],
      flags: [],
      env: null,
      telemetry: null,
      stdoutTail: null,
      stderrTail: job.stacktrace?.at(-1) ?? null,
      wallMs: null,
      startedAt: job.processedOn ?? null,
      finishedAt: job.finishedOn ?? Date.now(),
    };
    this.logOutcome(o, await recordOutcome(this.opts.db, o));
    await this.releaseFinished([o.sweepId]);
  }

  /**
   * Sweeps whose every run now has an outcome no longer need their source bundles: release them
   * (each expires after the grace period unless another unfinished sweep holds it). Idempotent; a
   * failure only delays the removal to the next outcome of that sweep or the bundle stays, which is safe.
   */
  private async releaseFinished(sweepIds: Iterable<string>): Promise<void> {
    for (const sweepId of new Set(sweepIds)) {
      try {
        const open = await this.opts.db.run.count({ where: { sweepId, status: 'queued' } });
        if (open === 0) await releaseSweepBundles(this.opts.connection, sweepId, this.opts.bundleGraceS ?? bundleGraceSeconds());
      } catch (err) {
        this.log.warn({ sweepId, reason: (err as Error).message }, `releasing the source bundles of ${sweepId}: ${(err as Error).message}`);
      }
    }
  }

  /** Idempotent: stops taking results, finishes the write in flight. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      try {
        await this.worker.close();
      } catch {
        /* closing anyway */
      }
    })();
    return this.closing;
  }
}

function envLockMs(): number | undefined {
  const v = Number(process.env['MOEFARM_LOCK_MS']);
  return Number.isInteger(v) && v >= 500 ? v : undefined;
}
