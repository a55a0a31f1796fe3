/**
 * Results that cannot be written as they are, and a database that is not the
 * one opened, with real processes: `moefarm worker` and `moefarm serve`
 * children, a test-owned redis-server, the real CPU binary, SQLite files and
 * a scratch database on the shared Postgres.
 *
 * The faults this reproduces:
 *  - on Postgres a NUL byte in a binary's stderr made the write fail
 *    (`invalid byte sequence for encoding "UTF8": 0x00`); the collector
 *    retried it for ever, the run stayed `waiting`, and every healthy result
 *    batched with it failed twice before landing;
 *  - a message that failed its schema was dropped with no row and no log line;
 *  - the SQLite file deleted while `moefarm serve` ran: the collector wrote on
 *    into the unlinked file and acknowledged every result, all lost.
 *
 * Outcomes are real (a worker runs the sweep while no collector runs, so they
 * wait in Redis); the test then changes some of them as a broken worker or a
 * hostile writer could, or installs a trigger that makes the database refuse
 * one run's row: a real refusal that is not "database unavailable".
 */
import { renameSync, rmSync } from 'node:fs';
import { Queue } from 'bullmq';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/client.js';
import { RESULTS_QUEUE, runQueueName } from '../../src/queue/names.js';
import { RUN_JOB_OPTIONS } from '../../src/queue/options.js';
import { toJob } from '../../src/queue/job.js';
import { freshPostgres, waitFor } from '../helpers/services.js';
import { rig, teardown, warmBuild, type Rig } from './common.js';
import { enqueuePlan, outcomes, queueCounts, report, restingCounts, settled, startCollector, startWorker, type Proc } from './procs.js';
import { range, tinyPlan } from './sweeps.js';

beforeAll(warmBuild, 120_000);
const drops: Array<() => Promise<void>> = [];
afterEach(async () => {
  await teardown();
  while (drops.length) await drops.pop()!().catch(() => {});
});

const resultCounts = (r: Rig) => queueCounts(r, RESULTS_QUEUE);

/** Runs the sweep with a worker and no collector: every outcome waits in the results queue. */
async function outcomesWaiting(r: Rig, n: number, tweak: Parameters<typeof enqueuePlan>[4] = (j) => j) {
  const plan = tinyPlan(r.pool, { tokens: range(n) });
  await enqueuePlan(r.db, r.client, r.prefix, plan, tweak);
  const worker = await startWorker(r, r.pool, 'w1');
  await waitFor('every outcome to wait in Redis', async () => (await resultCounts(r))['waiting'] === n, 30_000);
  await worker.stop();
  return plan;
}

async function editOutcome(r: Rig, runId: string, edit: (data: Record<string, unknown>) => unknown): Promise<void> {
  const q = new Queue(RESULTS_QUEUE, { connection: r.client, prefix: r.prefix });
  const job = (await q.getJob(runId))!;
  await job.updateData(edit(job.data as Record<string, unknown>));
  await q.close();
}

/** A trigger that refuses the Run row of one run (a real refusal, with a reason that is not "database away"). */
async function refuseRun(r: Rig, provider: 'sqlite' | 'postgres', runId: string): Promise<void> {
  if (provider === 'sqlite') {
    const db = new Database(r.dbUrl.slice('file:'.length));
    db.exec(`CREATE TRIGGER refuse BEFORE UPDATE ON "Run" WHEN NEW.id = '${runId}' AND NEW.status <> 'collector-error' BEGIN SELECT RAISE(ABORT, 'this row is refused by a test trigger'); END`);
    db.close();
    return;
  }
  await r.db.$executeRawUnsafe(
    `CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.id = '${runId}' AND NEW.status <> 'collector-error' THEN RAISE EXCEPTION 'this row is refused by a test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
  );
  await r.db.$executeRawUnsafe(`CREATE TRIGGER refuse BEFORE UPDATE ON "Run" FOR EACH ROW EXECUTE FUNCTION refuse()`);
}

async function rigFor(provider: 'sqlite' | 'postgres', tag: string): Promise<Rig> {
  if (provider === 'sqlite') return rig(tag);
  const pg = await freshPostgres();
  drops.push(pg.drop);
  return rig(tag, { dbUrl: pg.url });
}

describe.each(['postgres', 'sqlite'] as const)('results that cannot be written as they are (%s)', (provider) => {
  it('NUL bytes and broken text are stored; a refused result is isolated, tried 3 times, recorded collector-error; the rest lands at once', async () => {
    const r = await rigFor(provider, `poison-${provider}`);
    const plan = await outcomesWaiting(r, 8);
    const [nul, surrogate, refused] = plan.runs.map((x) => x.id) as [string, string, string];
    await editOutcome(r, nul, (d) => ({ ...d, stderrTail: 'warning\u0000\u0000 from the kernel\n', reason: 'a\u0000b' }));
    await editOutcome(r, surrogate, (d) => ({ ...d, stderrTail: 'lone \ud800 surrogate' }));
    await refuseRun(r, provider, refused);

    const collector = await startCollector(r, r.dbUrl);
    const t0 = Date.now();
    // The seven healthy results land while the refused one is still being retried (it takes 1.2 s at least).
    const healthy = await waitFor('the seven others to land', async () => {
      const runs = await outcomes(r.db, plan.sweepId);
      return runs.filter((x) => x.status === 'done').length === 7 ? Date.now() - t0 : null;
    }, 30_000, 50);
    expect((await r.db.run.findUniqueOrThrow({ where: { id: refused } })).status).toBe('queued');
    await waitFor('the refused one to be recorded', () => settled(r.db, plan.sweepId, 8), 30_000, 50);
    const refusedAfter = Date.now() - t0;

    const runs = await outcomes(r.db, plan.sweepId);
    expect(runs.filter((x) => x.id !== refused).map((x) => [x.status, x.results])).toEqual(Array(7).fill(['done', 1]));
    const bad = await r.db.run.findUniqueOrThrow({ where: { id: refused } });
    expect(bad.status).toBe('collector-error');
    expect(bad.reason).toMatch(/^the database refused this outcome 3 times \(it was 'done'\): this row is refused by a test trigger/);
    const n = await r.db.run.findUniqueOrThrow({ where: { id: nul } });
    expect(n.stderrTail).toBe('warning\u2400\u2400 from the kernel\n');
    expect(n.reason).toBe('a\u2400b');
    expect((await r.db.run.findUniqueOrThrow({ where: { id: surrogate } })).stderrTail).toBe('lone \ufffd surrogate');
    // Nothing left in Redis, nothing failed: each result acknowledged once, after its row committed.
    expect(await restingCounts(r, RESULTS_QUEUE)).toMatchObject({ completed: 8, waiting: 0, active: 0, delayed: 0, failed: 0 });
    expect(collector.output()).toMatch(new RegExp(`${refused}: the database refused this outcome 3 times .*recording it as collector-error`));
    await collector.stop();
    report(`refused result (${provider})`, { runs: 8, healthyLandedAfterMs: healthy, refusedRecordedAfterMs: refusedAfter, nulStored: true });
  });
});

describe('messages that fail their schema', () => {
  it('are recorded with the reason (an outcome as collector-error, a run job as invalid), never dropped silently', async () => {
    const r = await rig('schema');
    const plan = tinyPlan(r.pool, { tokens: range(3) });
    const [outcomeRun, jobRun, fine] = plan.runs as [(typeof plan.runs)[0], (typeof plan.runs)[0], (typeof plan.runs)[0]];
    // Plan all three; queue only the third as a real job.
    await enqueuePlan(r.db, r.client, r.prefix, { ...plan, runs: [fine] });
    const { recordPlan } = await import('../../src/db/plan.js');
    await recordPlan(r.db, plan, null);
    // An outcome a broken worker could hand over: its status is not one the farm knows.
    const results = new Queue(RESULTS_QUEUE, { connection: r.client, prefix: r.prefix });
    await results.add('outcome', { runId: outcomeRun.id, sweepId: plan.sweepId, pool: r.pool, status: 'exploded' }, { jobId: outcomeRun.id, attempts: 5 });
    // One that names no run at all.
    await results.add('outcome', { hello: 'world' }, { jobId: 'not-a-run', attempts: 5 });
    await results.close();
    // A run job written straight into Redis whose payload fails the job schema.
    const runs = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
    const job = toJob(plan, jobRun, Date.now());
    await runs.add('run', { ...job, rep: 'zero' }, { ...RUN_JOB_OPTIONS, jobId: jobRun.id });
    await runs.close();

    const collector = await startCollector(r, r.dbUrl);
    const worker = await startWorker(r, r.pool, 'w1');
    await waitFor('all three runs to be recorded', () => settled(r.db, plan.sweepId, 3), 30_000);
    const o = await r.db.run.findUniqueOrThrow({ where: { id: outcomeRun.id } });
    expect(o.status).toBe('collector-error');
    expect(o.reason).toMatch(/the outcome message in Redis does not match its schema: .*outcome: status: /);
    expect(o.stderrTail).toContain('"exploded"'); // the message as it was, kept for diagnosis
    const j = await r.db.run.findUniqueOrThrow({ where: { id: jobRun.id } });
    expect(j.status).toBe('invalid');
    expect(j.reason).toMatch(/the job in Redis does not match the job schema \(job: rep: .*\); it failed with: invalid job payload/);
    expect((await r.db.run.findUniqueOrThrow({ where: { id: fine.id } })).status).toBe('done');
    await waitFor('the nameless one to be logged', async () => /not-a-run: the outcome message in Redis does not match its schema.*names no run: kept in the failed set/.test(collector.output()), 10_000);
    expect(collector.output()).toMatch(new RegExp(`run job ${jobRun.id} on pool ${r.pool}: .*recorded as invalid`));
    // The nameless outcome is kept (failed set), with its reason; nothing else is left.
    const counts = await restingCounts(r, RESULTS_QUEUE);
    expect(counts).toMatchObject({ failed: 1, waiting: 0, delayed: 0, active: 0 });
    await collector.stop();
    await worker.stop();
    report('schema-failing messages', { outcome: o.status, runJob: j.status, nameless: 'kept in failed set, logged' });
  });
});

describe('the SQLite file deleted or replaced under a running collector', () => {
  async function setup(tag: string): Promise<{ r: Rig; collector: Proc; file: string; n: number; sweepId: string }> {
    const r = await rig(tag);
    const file = r.dbUrl.slice('file:'.length);
    const collector = await startCollector(r, r.dbUrl);
    // Eight runs of 400 ms each on one worker: results keep arriving after the file goes.
    const n = 8;
    const plan = tinyPlan(r.pool, { tokens: range(n) });
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j) => ({ ...j, test: { sleepMs: 400 } }));
    await startWorker(r, r.pool, 'w1');
    await waitFor('two results to land', async () => (await r.db.run.count({ where: { sweepId: plan.sweepId, status: 'done' } })) >= 2, 30_000, 50);
    return { r, collector, file, n, sweepId: plan.sweepId };
  }

  async function handedOver(s: { r: Rig; n: number }): Promise<void> {
    await waitFor('the worker to hand over every outcome', async () => {
      const c = await resultCounts(s.r);
      return (c['completed'] ?? 0) + (c['waiting'] ?? 0) + (c['delayed'] ?? 0) === s.n;
    }, 30_000);
  }

  /** After the first collector stopped: a new one on a fresh file at the same path writes what the first left in Redis. */
  async function nextCollectorWritesTheRest(s: { r: Rig; file: string; n: number }, acknowledgedBefore: number): Promise<number> {
    const c2 = await startCollector(s.r, s.r.dbUrl);
    const db2 = await openDb({ url: s.r.dbUrl });
    try {
      await waitFor('the rest to land in the new file', async () => (await db2.run.count({ where: { status: 'done' } })) === s.n - acknowledgedBefore, 30_000);
      // A result is acknowledged just after its transaction commits: wait for the queue to say so too.
      await waitFor('every result to be acknowledged', async () => (await resultCounts(s.r))['completed'] === s.n, 10_000);
      const counts = await resultCounts(s.r);
      expect(counts).toMatchObject({ completed: s.n, waiting: 0, active: 0, delayed: 0, failed: 0 });
      return db2.run.count();
    } finally {
      await db2.$disconnect();
      await c2.stop();
    }
  }

  it('deleted: the collector stops with a clear error before acknowledging another result; the rest wait in Redis', async () => {
    const s = await setup('deleted');
    rmSync(s.file);
    rmSync(`${s.file}-wal`, { force: true });
    rmSync(`${s.file}-shm`, { force: true });
    const t0 = Date.now();
    const code = await s.collector.exited;
    const stoppedMs = Date.now() - t0;
    expect(code).toBe(3);
    expect(s.collector.output()).toMatch(/the SQLite database file was deleted while this process had it open; nothing more is written to it/);
    const acknowledged = (await resultCounts(s.r))['completed'] ?? 0;
    const landed = Number(/stopped \((\d+) recorded/.exec(s.collector.output())?.[1]);
    // Every acknowledged result was committed to the file it opened, before the delete. Not every committed one is
    // acknowledged: the collector exits without waiting for an acknowledgement still on its way to Redis, and that
    // result, left in Redis, is written by the next collector (the rows check below counts it there).
    expect(acknowledged).toBeLessThanOrEqual(landed);
    expect(acknowledged).toBeGreaterThan(0);
    await handedOver(s);
    const rows = await nextCollectorWritesTheRest(s, acknowledged);
    expect(rows).toBe(s.n - acknowledged);
    report('SQLite file deleted', { runs: s.n, acknowledgedBefore: acknowledged, collectorExit: code, stoppedAfterMs: stoppedMs, writtenByNext: rows });
  });

  it('replaced by another file: the same', async () => {
    const s = await setup('replaced');
    // Another database file moved over the path (as a restore from backup would).
    const other = `${s.file}.other`;
    const o = new Database(other);
    o.exec('CREATE TABLE t (x)');
    o.close();
    renameSync(other, s.file);
    rmSync(`${s.file}-wal`, { force: true });
    rmSync(`${s.file}-shm`, { force: true });
    const code = await s.collector.exited;
    expect(code).toBe(3);
    expect(s.collector.output()).toMatch(/the SQLite database file was replaced by another file while this process had it open/);
    const acknowledged = (await resultCounts(s.r))['completed'] ?? 0;
    rmSync(s.file); // the next collector starts on a fresh file
    await handedOver(s);
    const rows = await nextCollectorWritesTheRest(s, acknowledged);
    expect(rows).toBe(s.n - acknowledged);
    report('SQLite file replaced', { runs: s.n, acknowledgedBefore: acknowledged, collectorExit: code });
  });
});
