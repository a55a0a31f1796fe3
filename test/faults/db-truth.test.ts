/**
 * The database is the truth for what has finished, with real processes:
 * `moefarm sweep submit`, `sweep status`, `sweep resume`, `moefarm worker`
 * and `moefarm serve` children, a test-owned redis-server, SQLite files and
 * the real CPU binary.
 *
 * The faults this reproduces:
 *  - Redis lost its state mid-sweep (FLUSHALL): `sweep status` showed
 *    `waiting N` for ever, and nothing could enqueue the runs again;
 *  - the database replaced while Redis kept the completed job ids (BullMQ
 *    keeps them for days): re-submitting enqueued nothing (`enqueued 0,
 *    already done 0`), as `npm run demo` did after `moefarm.db` was deleted.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/client.js';
import { RESULTS_QUEUE } from '../../src/queue/names.js';
import { readWorkers } from '../../worker/heartbeat.js';
import { sqliteUrl, waitFor } from '../helpers/services.js';
import { rig, teardown, warmBuild } from './common.js';
import { outcomes, queueCounts, report, runCli, settled, startCollector, startWorker } from './procs.js';
import { range, tinySweepText } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

function sweepIdOf(stdout: string): string {
  const id = /sweep (s[0-9a-f]{12})/.exec(stdout)?.[1];
  if (!id) throw new Error(`no sweep id in: ${stdout}`);
  return id;
}

describe('the database is the truth for what has finished', () => {
  it('Redis loses its state mid-sweep (FLUSHALL): status says so, sweep resume runs every run without an outcome', async () => {
    const r = await rig('flushall');
    const file = join(r.dir, 'flush.yaml');
    // 12 runs of 0.1-1 s each (T = 1..12): long enough to flush Redis in the middle.
    writeFileSync(file, tinySweepText(r.pool, { name: 'flush', tokens: range(12), iters: 200 }));
    const env = { DATABASE_URL: r.dbUrl };
    const collector = await startCollector(r, r.dbUrl);
    const sub = await runCli(r, ['sweep', 'submit', file], env);
    expect(sub.exitCode, String(sub.stderr)).toBe(0);
    const id = sweepIdOf(String(sub.stdout));
    await startWorker(r, r.pool, 'w1');
    await waitFor('a few outcomes', async () => (await r.db.run.count({ where: { sweepId: id, status: 'done' } })) >= 3, 60_000);
    await r.client.flushall();
    const doneAtFlush = await r.db.run.count({ where: { sweepId: id, status: { not: 'queued' } } });
    // What was in flight when Redis was flushed ends (its outcome, if any, reaches the collector); then nothing
    // moves: every run still queued in the database is one that status counts as having no job.
    // (A run its worker was running when Redis was flushed has no job either, until its outcome lands.) The end of
    // what was in flight is waited for, not guessed: the worker's heartbeat (written again after the flush) says it
    // is idle, and nothing it handed over is left in the results queue. Else a slow in-flight run would be resumed
    // too and run twice (its second outcome a duplicate, ignored: correct, but not what this test is about).
    await waitFor('the worker to be idle and every outcome it handed over to be recorded', async () => {
      const live = (await readWorkers(r.client, r.prefix)).filter((w) => w.live);
      const c = await queueCounts(r, RESULTS_QUEUE);
      return live.length === 1 && live[0]!.snapshot.busyWith === null && c['waiting'] === 0 && c['active'] === 0 && c['delayed'] === 0;
    }, 60_000, 250);
    let before = -1;
    const pool = await waitFor('status to count every queued run as having no job, twice in a row', async () => {
      const status = await runCli(r, ['sweep', 'status', id, '--json'], env);
      expect(status.exitCode, String(status.stderr)).toBe(0);
      const p = JSON.parse(String(status.stdout)).pools[0];
      const queued = await r.db.run.count({ where: { sweepId: id, status: 'queued' } });
      const stable = queued === before;
      before = queued;
      return stable && p.noJob === queued && p;
    }, 60_000, 1500);
    expect(before).toBeGreaterThan(0);
    expect(pool.waiting).toBe(0);
    const text = await runCli(r, ['sweep', 'status', id], env);
    expect(String(text.stdout)).toContain(`no job ${before}`);
    expect(String(text.stdout)).toContain(`${before} queued run(s) have no job in Redis`);
    expect(pool.warning).toContain(`moefarm sweep resume ${id} enqueues them`);

    const resume = await runCli(r, ['sweep', 'resume', id], env);
    expect(resume.exitCode, String(resume.stderr)).toBe(0);
    // The bundle went with the flush: it is stored again from the database.
    expect(String(resume.stdout)).toContain(`${before} run(s) without an outcome in the database; enqueued ${before} (0 already queued`);
    expect(String(resume.stdout)).toContain('1 source bundle(s) stored in Redis again from the database');
    await waitFor('every run to finish', () => settled(r.db, id, 12), 90_000);
    const runs = await outcomes(r.db, id);
    expect(runs.every((x) => x.status === 'done' && x.results === 1)).toBe(true);
    // A second resume finds nothing to do.
    const again = await runCli(r, ['sweep', 'resume', id], env);
    expect(String(again.stdout)).toContain('nothing to resume');
    expect(collector.output()).not.toMatch(/duplicate/);
    report('FLUSHALL mid-sweep, then sweep resume', { runs: 12, endedBeforeFlush: doneAtFlush, resumed: before, done: runs.length });
  }, 240_000);

  it('the database replaced while Redis keeps the completed job ids: re-submitting runs the sweep again', async () => {
    const r = await rig('newdb');
    const file = join(r.dir, 'again.yaml');
    writeFileSync(file, tinySweepText(r.pool, { name: 'again', tokens: range(4) }));
    const env = { DATABASE_URL: r.dbUrl };
    let collector = await startCollector(r, r.dbUrl);
    const first = await runCli(r, ['sweep', 'submit', file], env);
    expect(first.exitCode, String(first.stderr)).toBe(0);
    const id = sweepIdOf(String(first.stdout));
    await startWorker(r, r.pool, 'w1');
    await waitFor('the sweep to finish', () => settled(r.db, id, 4), 60_000);

    // As after `rm moefarm.db`: the collector stopped, the file and its journal gone; Redis keeps every id.
    await collector.stop();
    await r.db.$disconnect();
    const path = r.dbUrl.slice('file:'.length);
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    collector = await startCollector(r, r.dbUrl);

    const second = await runCli(r, ['sweep', 'submit', file], env);
    expect(second.exitCode, String(second.stderr)).toBe(0);
    // Before: "enqueued 0 (4 already queued, 0 already done)" and a sweep waiting for ever.
    expect(String(second.stdout)).toContain('enqueued 4 (0 already queued, 0 already done); 4 of them Redis remembered as finished');
    const db = await openDb({ url: r.dbUrl });
    try {
      await waitFor('the sweep to finish in the new database', () => settled(db, id, 4), 60_000);
      const runs = await outcomes(db, id);
      expect(runs.map((x) => [x.status, x.results])).toEqual(Array(4).fill(['done', 1]));
      // A third submit adds nothing: the database says every run is done.
      const third = await runCli(r, ['sweep', 'submit', file], env);
      expect(String(third.stdout)).toContain('enqueued 0 (0 already queued, 4 already done)');
    } finally {
      await db.$disconnect();
    }
    report('database replaced, Redis keeps the completed ids, re-submit', { runs: 4, rerun: 4 });
  }, 240_000);

  it('commands that only read never create a database: a mistyped path or database name is an error naming it', async () => {
    const r = await rig('readonly');
    const missing = sqliteUrl(join(r.dir, 'nope'));
    for (const args of [['sweep', 'status', 's000000000000'], ['sweep', 'list'], ['results', 'list'], ['report', '--sweep', 's000000000000', '-o', '-'], ['sweep', 'resume', 's000000000000']]) {
      const res = await runCli(r, args, { DATABASE_URL: missing });
      expect(res.exitCode, `${args.join(' ')}: ${String(res.stderr)}`).toBe(2);
      expect(String(res.stderr)).toContain(`DATABASE_URL: ${missing.slice('file:'.length)}: no such SQLite database file`);
    }
    const { existsSync } = await import('node:fs');
    expect(existsSync(missing.slice('file:'.length))).toBe(false);
    // A file that is there but is not moefarm's is refused too, and left as it was.
    const other = join(r.dir, 'other.txt');
    writeFileSync(other, 'not a database');
    const res = await runCli(r, ['sweep', 'list'], { DATABASE_URL: `file:${other}` });
    expect(res.exitCode).toBe(2);
    expect(String(res.stderr)).toContain(`DATABASE_URL: ${other}: not a SQLite database`);
  }, 60_000);
});
