/**
 * Faults of the services around the farm, with real processes throughout
 * (worker and collector as `moefarm worker` / `moefarm serve`, a test-owned
 * redis-server with AOF, a test-owned Postgres, SQLite files, the CPU binary):
 *  3. Redis crashes (SIGKILL) and restarts in the middle of a sweep;
 *  4. the database is away while results arrive: the SQLite file locked by an
 *     exclusive transaction, or the Postgres server stopped;
 *  5. the collector killed between receiving a result and committing it, and
 *     killed again and again while results stream in.
 * Every test ends with: each planned run has exactly one outcome, each done
 * run exactly one result row, and the collector's own count of duplicates.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Queue } from 'bullmq';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RESULTS_QUEUE, runQueueName } from '../../src/queue/names.js';
import { freshPostgres, tempDir, waitFor } from '../helpers/services.js';
import { rig, teardown, warmBuild, type Rig } from './common.js';
import { TestPostgres } from '../helpers/postgres.js';
import { collectorCounts, enqueuePlan, queueCounts, outcomes, report, restingCounts, settled, startCollector, startWorker, type Proc } from './procs.js';
import { range, tinyPlan } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

async function expectExactlyOnce(r: Rig, sweepId: string, n: number): Promise<void> {
  const runs = await outcomes(r.db, sweepId);
  expect(runs).toHaveLength(n);
  expect(runs.filter((x) => x.status !== 'done').map((x) => `${x.id}: ${x.status} ${x.reason}`)).toEqual([]);
  expect(runs.filter((x) => x.results !== 1)).toEqual([]);
  expect(await r.db.result.count({ where: { run: { sweepId } } })).toBe(n);
}

/** Results handed over by workers and not yet written: still in Redis. */
async function pendingResults(r: Rig): Promise<number> {
  const c = await queueCounts(r, RESULTS_QUEUE);
  return (c['waiting'] ?? 0) + (c['active'] ?? 0) + (c['delayed'] ?? 0) + (c['prioritized'] ?? 0);
}

async function stopAndCount(collector: Proc) {
  await collector.stop();
  return collectorCounts(collector);
}

describe('Redis restarted in the middle of a sweep', () => {
  it('completes the sweep with no result lost or duplicated', async () => {
    const r = await rig('redis-restart', { fsync: 'always' });
    const collector = await startCollector(r, r.dbUrl);
    const workers = [await startWorker(r, r.pool, 'w1'), await startWorker(r, r.pool, 'w2')];
    const plan = tinyPlan(r.pool, { tokens: range(30), repeat: 2 });
    const n = plan.runs.length;
    // 150 ms per run inside the binary: the sweep lasts a few seconds, long enough to crash Redis in it.
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j) => ({ ...j, test: { sleepMs: 150 } }));
    const t0 = Date.now();
    const before = await waitFor('a third of the runs to be recorded', async () => {
      const done = await r.db.run.count({ where: { sweepId: plan.sweepId, status: { not: 'queued' } } });
      return done >= n / 3 ? done : null;
    }, 30_000, 50);
    await r.redis.crashAndRestart(1000);
    await waitFor('every run to have an outcome', () => settled(r.db, plan.sweepId, n), 50_000);
    const ms = Date.now() - t0;
    await expectExactlyOnce(r, plan.sweepId, n);
    expect(workers.every((w) => w.running)).toBe(true);
    const counts = await stopAndCount(collector);
    expect(counts?.recorded).toBe(n);
    report('Redis crash+restart mid-sweep', { runs: n, recordedBeforeCrash: before, results: n, duplicatesIgnored: counts?.duplicates, ms });
  });
});

describe('the database away while results arrive', () => {
  it('SQLite locked by an exclusive transaction: results wait in Redis, then all land once', async () => {
    const r = await rig('sqlite-lock');
    const collector = await startCollector(r, r.dbUrl);
    const plan = tinyPlan(r.pool, { tokens: range(8) });
    const n = plan.runs.length;
    await enqueuePlan(r.db, r.client, r.prefix, plan);
    // Another connection takes the write lock and holds it well past the collector's busy timeout (1 s).
    const locker = new Database(r.dbUrl.slice('file:'.length));
    locker.exec('BEGIN EXCLUSIVE');
    const lockedAt = Date.now();
    const worker = await startWorker(r, r.pool, 'w1');
    await waitFor('the worker to finish every run', async () => (await queueCounts(r, runQueueName(r.pool)))['completed'] === n, 30_000);
    expect(await pendingResults(r)).toBe(n);
    // Three failed writes, each after SQLite's busy timeout (1 s) and retried with a longer backoff: the database is really away.
    await waitFor('the collector to fail a write three times', async () => (collector.output().match(/write of .* failed, will retry/g) ?? []).length >= 3, 30_000);
    const waiting = await pendingResults(r);
    const recordedWhileLocked = (locker.prepare(`SELECT count(*) AS c FROM "Run" WHERE "sweepId" = ? AND status <> 'queued'`).get(plan.sweepId) as { c: number }).c;
    expect(waiting).toBe(n);
    expect(recordedWhileLocked).toBe(0);
    locker.exec('COMMIT');
    locker.close();
    const lockedMs = Date.now() - lockedAt;
    const t1 = Date.now();
    await waitFor('every run to have an outcome', () => settled(r.db, plan.sweepId, n), 45_000);
    const drainMs = Date.now() - t1;
    await expectExactlyOnce(r, plan.sweepId, n);
    expect(await pendingResults(r)).toBe(0);
    const counts = await stopAndCount(collector);
    expect(counts).toEqual({ recorded: n, duplicates: 0 });
    await worker.stop();
    report('SQLite locked', { runs: n, waitingInRedisWhileLocked: waiting, recordedWhileLocked, lockedMs, drainAfterUnlockMs: drainMs, duplicates: 0 });
  });

  it('Postgres stopped: results wait in Redis, then all land once', async () => {
    const t = tempDir('faults-pg');
    let pg: TestPostgres | null = null;
    try {
      pg = await TestPostgres.start(t.dir);
      const dbUrl = await pg.createDatabase(`moefarm_${randomUUID().replace(/-/g, '').slice(0, 8)}`);
      const r = await rig('pg-down', { dbUrl });
      const collector = await startCollector(r, r.dbUrl);
      const plan = tinyPlan(r.pool, { tokens: range(8) });
      const n = plan.runs.length;
      await enqueuePlan(r.db, r.client, r.prefix, plan);
      await pg.stopServer();
      const downAt = Date.now();
      const worker = await startWorker(r, r.pool, 'w1');
      await waitFor('the worker to finish every run', async () => (await queueCounts(r, runQueueName(r.pool)))['completed'] === n, 30_000);
      await waitFor('the collector to fail a write', async () => /write of .* failed, will retry/.test(collector.output()), 20_000);
      await waitFor('every result to wait in Redis', async () => (await pendingResults(r)) === n, 10_000);
      const waiting = await pendingResults(r);
      expect(waiting).toBe(n);
      expect(collector.running).toBe(true); // the outage does not take the collector down
      await pg.startServer();
      const downMs = Date.now() - downAt;
      const t1 = Date.now();
      await waitFor('every run to have an outcome', () => settled(r.db, plan.sweepId, n).catch(() => false), 60_000, 500);
      const drainMs = Date.now() - t1;
      await expectExactlyOnce(r, plan.sweepId, n);
      const counts = await stopAndCount(collector);
      expect(counts).toEqual({ recorded: n, duplicates: 0 });
      await worker.stop();
      await r.db.$disconnect();
      report('Postgres stopped', { runs: n, waitingInRedisWhileDown: waiting, downMs, drainAfterRestartMs: drainMs, duplicates: 0 });
    } finally {
      await teardown();
      await pg?.stop();
      t.cleanup();
    }
  });
});

describe('the collector killed', () => {
  it('between receiving a result and committing it: the result is written once, by the next collector', async () => {
    // Postgres, because a lock there makes the collector's transaction wait for as long as it is held (SQLite
    // gives up after its 10 s busy timeout).
    const pgdb = await freshPostgres();
    try {
      const r = await rig('collector-kill', { lockMs: 2000, dbUrl: pgdb.url });
      const plan = tinyPlan(r.pool, { tokens: range(3) });
      const n = plan.runs.length;
      await enqueuePlan(r.db, r.client, r.prefix, plan);
      const first = await startCollector(r, r.dbUrl);
      // Another session locks the Run table: the collector's transaction blocks after it has taken the message.
      const locker = new pg.Client({ connectionString: pgdb.url });
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE "Run" IN ACCESS EXCLUSIVE MODE');
      const worker = await startWorker(r, r.pool, 'w1');
      await waitFor('the worker to finish every run', async () => (await queueCounts(r, runQueueName(r.pool)))['completed'] === n, 30_000);
      // The collector writes in batches: it holds every result, one batch blocked in its transaction, the rest waiting for it.
      await waitFor('the collector to hold the results mid-write', async () => (await queueCounts(r, RESULTS_QUEUE))['active'] === n, 10_000, 50);
      await sleep(500);
      expect((await queueCounts(r, RESULTS_QUEUE))['active']).toBe(n); // still blocked in its transaction
      await first.kill();
      await locker.query('ROLLBACK');
      await locker.end();
      expect(await r.db.run.count({ where: { sweepId: plan.sweepId, status: { not: 'queued' } } })).toBe(0);
      expect(await pendingResults(r)).toBe(n);
      const killedAt = Date.now();
      const second = await startCollector(r, r.dbUrl);
      await waitFor('every run to have an outcome', () => settled(r.db, plan.sweepId, n), 30_000);
      const recoverMs = Date.now() - killedAt;
      await expectExactlyOnce(r, plan.sweepId, n);
      // The next collector acknowledges a result only after its row has committed, so the rows can be visible a
      // moment before their jobs count as completed (CI saw the completed list empty here): wait for the queue to
      // come to rest. Then every result the first collector held was started twice, by it and by the next one
      // after BullMQ took it back (how, the stalled-job check or a retry, is BullMQ's business).
      expect(await restingCounts(r, RESULTS_QUEUE)).toMatchObject({ completed: n, failed: 0 });
      const results = new Queue(RESULTS_QUEUE, { connection: r.client, prefix: r.prefix });
      const completed = await results.getCompleted();
      await results.close();
      expect(completed.map((j) => j.attemptsStarted >= 2)).toEqual(Array(n).fill(true));
      const startedTwice = completed.filter((j) => j.attemptsStarted >= 2).length;
      const stalled = completed.filter((j) => j.stalledCounter > 0).length;
      expect(await stopAndCount(second)).toEqual({ recorded: n, duplicates: 0 });
      await worker.stop();
      report('collector SIGKILL mid-write', { runs: n, startedTwice, byStalledCheck: stalled, recoverMs, duplicates: 0 });
    } finally {
      await teardown();
      await pgdb.drop();
    }
  });

  it('again and again while results stream in: every result is written once', async () => {
    const r = await rig('collector-churn', { lockMs: 2000 });
    const plan = tinyPlan(r.pool, { tokens: range(40) });
    const n = plan.runs.length;
    // 150 ms per run: the stream lasts at least 3 s on two workers, whatever the machine, so the kills land in it.
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j) => ({ ...j, test: { sleepMs: 150 } }));
    await startWorker(r, r.pool, 'w1');
    await startWorker(r, r.pool, 'w2');
    let kills = 0;
    let duplicates = 0;
    let collector = await startCollector(r, r.dbUrl);
    const t0 = Date.now();
    while (!(await settled(r.db, plan.sweepId, n))) {
      if (Date.now() - t0 > 50_000) throw new Error('the sweep did not finish in 50 s');
      await sleep(300 + Math.floor(Math.random() * 400));
      if (kills < 6 && !(await settled(r.db, plan.sweepId, n))) {
        await collector.kill();
        kills++;
        collector = await startCollector(r, r.dbUrl);
      }
    }
    await expectExactlyOnce(r, plan.sweepId, n);
    duplicates = (await stopAndCount(collector))?.duplicates ?? 0;
    report('collector killed repeatedly', { runs: n, kills, duplicatesIgnoredByLastCollector: duplicates, ms: Date.now() - t0 });
    expect(kills).toBeGreaterThanOrEqual(2);
  });
});

