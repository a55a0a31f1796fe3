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
 * A result the database refuses (db/errors.ts: anything but "away") is
 * isolated from its batch by halving it, so the rest lands at once; the
 * refused one is tried POISON_TRIES times alone, then recorded as
 * `collector-error` with the refusal as its reason. Before, one NUL byte on
 * Postgres made a result retried for ever, its run `waiting` for ever, and
 * every healthy result batched with it failed twice before landing.
 *
 * A message that fails its schema is recorded too, never dropped without a
 * trace: an outcome as `collector-error`, a run job (found in a run queue's
 * failed set) as `invalid`, each with the schema's complaint as reason; one
 * that names no run is logged and kept in the failed set (outcomes) or logged
 * with its payload (run jobs).
 *
 * A SQLite file deleted or replaced under a running collector is found before
 * the commit (db/client.ts assertSameDatabase): the batch is not acknowledged,
 * the collector stops (`onFatal`), and its results wait in Redis for the next.
 *
 * It also closes runs whose jobs failed without an outcome (attempts used up
 * on transient errors, or stalled too often after worker crashes): it scans
 * the run queues' failed sets and records each as `failed` with BullMQ's
 * reason, so no sweep is left waiting on a run that will never report.
 *
 * A sweep's plan travels with its jobs (queue/sweep-definition.ts): at the
 * first outcome of a sweep this database holds no plan for (submitted to
 * another database, or without DATABASE_URL to a local ./moefarm.db), the
 * collector reads the sweep's definition from Redis and records the plan,
 * name and baseline included, the way `sweep submit` does; then the result.
 * A definition that is gone is logged as a warning, and the results are
 * recorded under `(unplanned)` as before.
 *
 * Each outcome it takes ends in one log line: run, sweep, status, the run's
 * wall time, its worker, and whether it was recorded or a duplicate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { bundleGraceSeconds, lockDurationMs, queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { DatabaseMovedError, isDatabaseUnavailable, refusalReason } from '../db/errors.js';
import { recordOutcome, recordOutcomes, recordUnreadable, type RecordResult, type UnreadableRun } from '../db/record.js';
import { UNPLANNED, writePlanRows } from '../db/plan.js';
import { decodeDefinition, fetchDefinition, releaseEndedSweep } from '../queue/sweep-definition.js';
import { nothingRan, OutcomeSchema, outcomeLogFields, RunJobSchema, type ParsedOutcome } from '../schema/job.js';
import { RESULTS_QUEUE, poolRunQueues, poolsKey } from '../queue/names.js';
import { DEFAULT_GPUS_WAIT_S } from '../schema/sweep.js';
import { readWorkers } from '../../worker/heartbeat.js';
import { cappedBackoff } from '../queue/options.js';
import { formatIssues } from '../schema/issues.js';
import { createLogger, type Log } from '../util/log.js';

/** Writes of one refused result, alone, before it is recorded as `collector-error`. */
export const POISON_TRIES = 3;
/** Pause before the second and third of them, ms. */
const POISON_RETRY_MS = [200, 1000];

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
   * Most results written in one transaction (default 200). The results queue is consumed with this
   * much concurrency; outcomes that arrive together are written together, and each message is
   * acknowledged only after the transaction holding it has committed.
   */
  batchSize?: number;
  /** Seconds a released source bundle stays in Redis (default MOEFARM_BUNDLE_GRACE_S, else 3600). */
  bundleGraceS?: number;
  onRecorded?: (o: ParsedOutcome, r: RecordResult) => void;
  /**
   * The collector cannot go on (the database file it opened was deleted or replaced): it has stopped taking
   * results and acknowledged none of those in hand. The caller should exit with the error.
   */
  onFatal?: (err: Error) => void;
  /** Where the collector logs (default: human-readable lines on stderr). */
  log?: Log;
  /**
   * Called when a write leaves a sweep with no run waiting for an outcome (also again, after more runs of it
   * finish: --until-confident, sweep retry). Called on the collector's path, before the acknowledgements: it
   * must only take note and return (serve --notify queues the sweep for a thread); an error it throws is logged.
   */
  onSweepFinished?: (sweepId: string) => void;
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
  private readonly refusedFailed = new Set<string>();
  private pending: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly batchSize: number;
  private readonly log: Log;
  private fatal: Error | null = null;
  /** Sweeps whose plan this database holds, or whose definition could not give one (warned once): not looked up again. */
  private readonly planned = new Set<string>();
  recorded = 0;
  duplicates = 0;
  /** Results the database refused and that were recorded as `collector-error` instead. */
  refused = 0;

  constructor(private readonly opts: CollectorOptions) {
    const log = (this.log = opts.log ?? createLogger({ name: 'collector' }));
    const lockDuration = opts.lockDurationMs ?? lockDurationMs() ?? 30_000;
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
    this.worker.on('failed', (job, err) =>
      log.warn({ runId: job?.id ?? null, reason: err.message }, `write of ${job?.id ?? '?'} failed, ${err instanceof UnrecoverableError ? 'kept in the failed set' : 'will retry'}: ${err.message}`),
    );
    this.worker.on('error', (err) => log.error({ reason: err.message }, `queue: ${err.message}`));
    this.timer = setInterval(() => void this.reconcile().catch((e: Error) => log.error({ reason: e.message }, `reconcile: ${e.message}`)), opts.reconcileEveryMs ?? 2000);
  }

  private async process(job: Job): Promise<RecordResult> {
    if (this.fatal) throw this.fatal; // stopping: leave it in Redis for the next collector
    const parsed = OutcomeSchema.safeParse(job.data);
    if (!parsed.success) return this.unreadableOutcome(job, formatIssues('outcome', parsed.error.issues.slice(0, 5)).replace(/\n/g, '; '));
    return new Promise<RecordResult>((resolve, reject) => {
      this.pending.push({ outcome: parsed.data, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** An outcome that fails its schema can never be written as it is: record its run as `collector-error`, with why. */
  private async unreadableOutcome(job: Job, issues: string): Promise<RecordResult> {
    const reason = `the outcome message in Redis does not match its schema: ${issues}`;
    const run = identify(job, 'collector-error', reason);
    this.log.warn({ runId: run?.runId ?? null, jobId: job.id ?? null, reason }, `${job.id ?? '?'}: ${reason}${run ? '; recorded as collector-error' : '; it names no run: kept in the failed set'}`);
    // Retrying it changes nothing: kept in the results queue's failed set for a human, with the reason.
    if (!run) throw new UnrecoverableError(`malformed outcome ${job.id ?? '?'} names no run: ${issues}`);
    try {
      const r = await recordUnreadable(this.opts.db, run);
      if (r === 'recorded') {
        this.refused++;
        await this.releaseFinished([run.sweepId]);
      }
      return r;
    } catch (err) {
      if (isDatabaseUnavailable(err)) {
        this.onWriteError(err);
        throw err;
      }
      this.log.error({ jobId: job.id ?? null, reason: refusalReason(err) }, `${job.id ?? '?'}: the database refused its collector-error record too: ${refusalReason(err)}; kept in the failed set`);
      throw new UnrecoverableError(`${reason}; recording it was refused: ${refusalReason(err)}`);
    }
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
    this.flushing = this.write(batch);
    await this.flushing;
    this.flushing = null;
    if (this.pending.length > 0) this.scheduleFlush();
  }

  /**
   * Writes a batch in one transaction. If the database is away, nothing committed and every message stays
   * in Redis, retried on its own backoff. If it refused the data, the batch is halved until the refused
   * messages are alone (a batch of 200 with one bad message: about 16 transactions), so the rest lands now.
   */
  private async write(batch: Pending[]): Promise<void> {
    if (this.fatal) return rejectAll(batch, this.fatal);
    try {
      await this.ensurePlans(batch.map((p) => p.outcome));
      const results = await recordOutcomes(this.opts.db, batch.map((p) => p.outcome));
      // Before the acknowledgements: whoever waits for the last outcome finds the bundles already released.
      await this.releaseFinished(batch.filter((_, i) => results[i] === 'recorded').map((p) => p.outcome.sweepId));
      batch.forEach((p, i) => this.settle(p, results[i]!));
    } catch (err) {
      if (isDatabaseUnavailable(err)) {
        this.onWriteError(err);
        return rejectAll(batch, err);
      }
      if (batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        await this.write(batch.slice(0, half));
        await this.write(batch.slice(half));
        return;
      }
      // Its retries run beside the next batches, never in front of them.
      void this.refused1(batch[0]!, err);
    }
  }

  /** One message the database refused: a few more tries alone, then its run is recorded as `collector-error`. Never throws. */
  private async refused1(p: Pending, first: unknown): Promise<void> {
    let last = first;
    for (let attempt = 2; attempt <= POISON_TRIES; attempt++) {
      await sleep(POISON_RETRY_MS[attempt - 2] ?? 1000);
      if (this.fatal) return p.reject(this.fatal);
      try {
        const [r] = await recordOutcomes(this.opts.db, [p.outcome]);
        return this.settle(p, r!);
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          this.onWriteError(err);
          return p.reject(err);
        }
        last = err;
      }
    }
    const o = p.outcome;
    const reason = `the database refused this outcome ${POISON_TRIES} times (it was '${o.status}'): ${refusalReason(last)}`;
    this.log.warn({ runId: o.runId, sweepId: o.sweepId, reason }, `${o.runId}: ${reason}; recording it as collector-error`);
    try {
      const [r] = await recordOutcomes(this.opts.db, [asCollectorError(o, reason)]);
      if (r === 'recorded') {
        this.refused++;
        await this.releaseFinished([o.sweepId]);
      }
      this.settle(p, r!);
    } catch (err) {
      if (isDatabaseUnavailable(err)) {
        this.onWriteError(err);
        return p.reject(err);
      }
      // Even the bare record was refused: keep the message in the failed set, with both reasons, for a human.
      this.log.error({ runId: o.runId, reason: refusalReason(err) }, `${o.runId}: the collector-error record was refused too: ${refusalReason(err)}; the message is kept in the failed set`);
      p.reject(new UnrecoverableError(`${reason}; recording collector-error was refused too: ${refusalReason(err)}`));
    }
  }

  private settle(p: Pending, r: RecordResult): void {
    if (r === 'recorded') this.recorded++;
    else this.duplicates++;
    this.logOutcome(p.outcome, r);
    this.opts.onRecorded?.(p.outcome, r);
    p.resolve(r);
  }

  /** A moved database file ends this collector: no more results are taken, none in hand is acknowledged. */
  private onWriteError(err: unknown): void {
    if (!(err instanceof DatabaseMovedError) || this.fatal) return;
    this.fatal = err;
    this.log.error({ event: 'fatal', reason: err.message }, err.message);
    const waiting = this.pending.splice(0);
    rejectAll(waiting, err);
    // Stop fetching at once; the jobs in hand fail (their lock is released) and wait in Redis for the next collector.
    void this.close();
    this.opts.onFatal?.(err);
  }

  private logOutcome(o: ParsedOutcome, r: RecordResult): void {
    const fields = {
      event: 'outcome',
      ...outcomeLogFields(o),
      wallMs: o.startedAt === null ? null : Math.round(o.finishedAt - o.startedAt),
      worker: o.worker?.id ?? null,
      written: r,
      results: o.builds.reduce((n, b) => n + b.output.results.filter((x) => x.stats).length, 0),
      ...(o.reason ? { reason: o.reason } : {}),
    };
    this.log.info(fields, `${o.runId} ${o.status} ${r}`);
  }

  /**
   * Record failed run jobs (no outcome will come from a worker) and drop them from the failed set; end as
   * `unsatisfiable` the jobs that wait for more GPUs than any live worker of their pool owns (closeUnservable).
   */
  async reconcile(): Promise<number> {
    if (this.reconciling) return 0;
    this.reconciling = true;
    let closed = 0;
    const prefix = queuePrefix();
    const results = new Queue(RESULTS_QUEUE, { connection: this.opts.connection, prefix });
    try {
      for (const pool of await this.opts.connection.smembers(poolsKey(prefix))) {
        const queues = await poolRunQueues(this.opts.connection, pool, prefix);
        if (queues.length > 1) closed += await this.closeUnservable(pool, queues, prefix);
        for (const { name } of queues) {
          const queue = new Queue(name, { connection: this.opts.connection, prefix });
          try {
            for (const job of await queue.getFailed(0, 199)) {
              try {
                await this.closeFailedRun(pool, job, results);
              } catch (err) {
                if (isDatabaseUnavailable(err)) {
                  this.onWriteError(err);
                  throw err;
                }
                // Refused: this one stays in the failed set (said once), the others are not held up by it.
                if (job.id && !this.refusedFailed.has(job.id)) {
                  this.refusedFailed.add(job.id);
                  this.log.error({ jobId: job.id ?? null, reason: refusalReason(err) }, `failed run job ${job.id}: the database refused its record: ${refusalReason(err)}; left in the failed set`);
                }
                continue;
              }
              await job.remove();
              closed++;
            }
          } finally {
            await queue.close();
          }
        }
      }
    } finally {
      await results.close().catch(() => {});
      this.reconciling = false;
    }
    return closed;
  }

  /**
   * BullMQ hands a job to any worker that asks, so a job of N GPUs waits in a queue of its own that only
   * workers owning N or more listen on (queue/names.ts). Where no live worker of the pool owns that many,
   * nothing would ever take it: once its wait is over (the sweep's gpus_wait_s after submission) it is
   * taken out of the queue and recorded as `unsatisfiable`, with the reason, so a sweep never hangs on it.
   * A job a worker holds cannot be removed (it is running): it is left alone. Removed first, then recorded:
   * a collector that dies between the two leaves a queued run without a job, which `sweep retry` enqueues again.
   */
  private async closeUnservable(pool: string, queues: ReadonlyArray<{ gpus: number; name: string }>, prefix: string): Promise<number> {
    const live = (await readWorkers(this.opts.connection, prefix)).filter((w) => w.live && w.snapshot.identity?.pool === pool);
    const owned = (w: (typeof live)[number]): number => {
      const n = (w.snapshot as { gpuCount?: unknown }).gpuCount;
      return typeof n === 'number' ? n : 0;
    };
    const most = live.length ? Math.max(1, ...live.map(owned)) : 0;
    const who = live.length ? live.map((w) => `${w.snapshot.id} (${owned(w)} GPU${owned(w) === 1 ? '' : 's'})`).join(', ') : 'none';
    let closed = 0;
    for (const q of queues) {
      if (q.gpus <= most) continue;
      const queue = new Queue(q.name, { connection: this.opts.connection, prefix });
      try {
        for (const job of await queue.getJobs(['waiting', 'delayed', 'prioritized'], 0, 199)) {
          const data = RunJobSchema.safeParse(job.data);
          if (!data.success || !job.id) continue; // an unreadable job fails on a worker and is recorded from the failed set
          const waitS = data.data.gpusWaitS ?? DEFAULT_GPUS_WAIT_S;
          const now = Date.now();
          if (now < data.data.submittedAt + waitS * 1000) continue;
          if ((await queue.remove(job.id)) !== 1) continue; // a worker took it meanwhile
          const o: ParsedOutcome = {
            runId: data.data.runId,
            sweepId: data.data.sweepId,
            pool,
            job: data.data,
            status: 'unsatisfiable',
            reason:
              `the point asks for ${q.gpus} GPUs, and no live worker of pool ${pool} owns that many ` +
              `(live workers: ${who}) for ${waitS} s after submission (gpus_wait_s); start one with moefarm worker --pool ${pool} --gpus ...`,
            attempts: 0,
            ...nothingRan(),
            finishedAt: now,
          };
          this.logOutcome(o, await recordOutcome(this.opts.db, o));
          await this.releaseFinished([o.sweepId]);
          closed++;
        }
      } finally {
        await queue.close();
      }
    }
    return closed;
  }

  private async closeFailedRun(pool: string, job: Job, results: Queue): Promise<void> {
    const data = RunJobSchema.safeParse(job.data);
    if (!data.success) {
      const issues = formatIssues('job', data.error.issues.slice(0, 5)).replace(/\n/g, '; ');
      const reason = `the job in Redis does not match the job schema (${issues}); it failed with: ${job.failedReason ?? 'unknown'}`;
      const run = identify(job, 'invalid', reason, pool);
      this.log.warn({ jobId: job.id ?? null, pool, reason }, `run job ${job.id ?? '?'} on pool ${pool}: ${reason}${run ? '; recorded as invalid' : `; it names no run, removed; its payload was: ${rawOf(job)}`}`);
      if (run && (await recordUnreadable(this.opts.db, run)) === 'recorded') await this.releaseFinished([run.sweepId]);
      return;
    }
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
      ...nothingRan(),
      stderrTail: job.stacktrace?.at(-1) ?? null,
      startedAt: job.processedOn ?? null,
      finishedAt: job.finishedOn ?? Date.now(),
    };
    await this.ensurePlans([o]);
    this.logOutcome(o, await recordOutcome(this.opts.db, o));
    await this.releaseFinished([o.sweepId]);
  }

  /**
   * Records the plan of each sweep of these outcomes that this database holds no plan for, from the
   * definition its jobs name (queue/sweep-definition.ts), through the code `sweep submit` writes it with.
   * Throws only when the database is away (the batch then waits in Redis and comes back); anything else
   * (the definition gone, changed, unreadable, or its rows refused) is a warning, and the outcomes are
   * recorded as before, under `(unplanned)` where the sweep has no row.
   */
  private async ensurePlans(outcomes: readonly ParsedOutcome[]): Promise<void> {
    const wanted = new Map<string, string>();
    for (const o of outcomes) if (o.job.definition && !this.planned.has(o.sweepId)) wanted.set(o.sweepId, o.job.definition);
    if (wanted.size === 0) return;
    const rows = await this.opts.db.sweep.findMany({ where: { id: { in: [...wanted.keys()] } }, select: { id: true, name: true } });
    for (const r of rows) {
      if (r.name === UNPLANNED) continue;
      this.planned.add(r.id);
      wanted.delete(r.id);
    }
    for (const [sweepId, hash] of wanted) {
      let stored: Awaited<ReturnType<typeof fetchDefinition>>;
      try {
        stored = await fetchDefinition(this.opts.connection, sweepId);
      } catch (err) {
        // Redis away: try again with the next outcome of this sweep.
        this.log.warn({ sweepId, reason: (err as Error).message }, `sweep ${sweepId}: reading its definition from Redis: ${(err as Error).message}; recording its outcomes without its plan for now`);
        continue;
      }
      const skip = (why: string) => {
        this.planned.add(sweepId);
        this.log.warn({ event: 'no-plan', sweepId, reason: why }, `sweep ${sweepId}: ${why}; its results are recorded under ${UNPLANNED}, without its name and baseline (submitting its sweep file with this DATABASE_URL records the plan)`);
      };
      if (!stored) {
        skip('its jobs name a definition that Redis no longer holds (expired after the sweep ended, or Redis lost it)');
        continue;
      }
      let def: Awaited<ReturnType<typeof decodeDefinition>>;
      try {
        def = await decodeDefinition(stored.blob);
      } catch (err) {
        skip(`its definition in Redis cannot be read (${(err as Error).message.slice(0, 300)})`);
        continue;
      }
      if (def.sweepId !== sweepId || def.hash !== hash) {
        skip(`its definition in Redis is not the one its jobs name (${def.sweepId} ${def.hash.slice(0, 12)}, the job names ${sweepId} ${hash.slice(0, 12)})`);
        continue;
      }
      try {
        const w = await writePlanRows(this.opts.db, def.rows, def.label);
        this.planned.add(sweepId);
        this.log.info(
          { event: 'plan', sweepId, name: def.name, runs: def.rows.runs.length, created: w.created },
          `sweep ${sweepId} (${def.name}): plan recorded from its jobs' definition (${def.rows.runs.length} runs, ${w.created} new rows)`,
        );
      } catch (err) {
        if (isDatabaseUnavailable(err)) throw err;
        skip(`the database refused its plan: ${refusalReason(err)}`);
      }
    }
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
        if (open === 0) {
          this.sweepFinished(sweepId);
          await releaseEndedSweep(this.opts.connection, sweepId, this.opts.bundleGraceS ?? bundleGraceSeconds());
        }
      } catch (err) {
        this.log.warn({ sweepId, reason: (err as Error).message }, `releasing the source bundles of ${sweepId}: ${(err as Error).message}`);
      }
    }
  }

  private sweepFinished(sweepId: string): void {
    if (!this.opts.onSweepFinished) return;
    try {
      this.opts.onSweepFinished(sweepId);
    } catch (err) {
      this.log.warn({ sweepId, reason: (err as Error).message }, `sweep ${sweepId} finished: its hook failed: ${(err as Error).message}`);
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

function rejectAll(batch: Pending[], err: unknown): void {
  for (const p of batch) p.reject(err);
}

/** The bare record of a run whose outcome the database refused: ids, parameters, why; nothing of what was refused. */
function asCollectorError(o: ParsedOutcome, reason: string): ParsedOutcome {
  return {
    ...o,
    status: 'collector-error',
    reason,
    attempts: Math.min(o.attempts, 1000),
    ...nothingRan(),
    finishedAt: Date.now(),
  };
}

const SWEEP_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The run a malformed message belongs to: its job id is the run id (producers set it so), the sweep is the
 * message's own `sweepId` if it has one, else the run id's first part (`sweepId-groupHash-rN`). Null when
 * neither names one.
 */
function identify(job: Job, status: UnreadableRun['status'], reason: string, pool?: string): UnreadableRun | null {
  const data = (typeof job.data === 'object' && job.data !== null ? job.data : {}) as Record<string, unknown>;
  const runId = job.id;
  if (!runId || !/^[A-Za-z0-9_-]{1,200}$/.test(runId)) return null;
  const own = typeof data['sweepId'] === 'string' && SWEEP_ID.test(data['sweepId']) ? data['sweepId'] : null;
  const fromId = /^(s[0-9a-f]{12})-/.exec(runId)?.[1] ?? null;
  const sweepId = own ?? fromId;
  if (!sweepId) return null;
  const ownPool = typeof data['pool'] === 'string' && data['pool'].length <= 64 ? data['pool'] : null;
  return { runId, sweepId, pool: pool ?? ownPool ?? '(unknown)', status, reason, raw: rawOf(job) };
}

function rawOf(job: Job): string {
  let text: string;
  try {
    text = JSON.stringify(job.data) ?? String(job.data);
  } catch {
    text = String(job.data);
  }
  return text.length > 2000 ? text.slice(0, 2000) + '…' : text;
}

