/**
 * A sweep carries its own definition, with real processes: `moefarm sweep
 * submit` children, a `moefarm worker` and a `moefarm serve` collector, a
 * test-owned redis-server, SQLite files and Postgres, the real CPU binary.
 *
 * The faults this reproduces:
 *  - submitted without DATABASE_URL, the plan went into a local ./moefarm.db
 *    while the collector wrote another database; there the results were filed
 *    under `(unplanned)`, and `results compare` took the wrong baseline. Here
 *    the submitter writes database A, the collector B;
 *  - two simultaneous submits of one sweep: one sometimes exited 1 with
 *    Prisma's raw error (SQLite busy timeout, Postgres `Sweep_pkey`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/db/client.js';
import { runQueueName } from '../../src/queue/names.js';
import { decodeDefinition, encodeDefinition } from '../../src/queue/sweep-definition.js';
import { definitionKey } from '../../src/queue/names.js';
import { planRowsOf } from '../../src/db/plan.js';
import { freshPostgres, waitFor } from '../helpers/services.js';
import { rig, teardown, warmBuild } from './common.js';
import { outcomes, report, runCli, settled, startCollector, startWorker } from './procs.js';
import { tinyPlan } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

/** Two variants, two token counts, two repetitions (8 runs); the baseline is `fused`, not the first variant. */
function sweepText(pool: string, name: string): string {
  return [
    `name: ${name}`,
    `pool: ${pool}`,
    'repeat: 2',
    'timeout_s: 60',
    'baseline: {variant: fused}',
    'matrix:',
    '  variant: [reference, fused]',
    '  model: tiny',
    '  tokens: [1, 2]',
    '  warmup: 0',
    '  iters: 3',
    '',
  ].join('\n');
}

function sweepIdOf(stdout: string): string {
  const id = /sweep (s[0-9a-f]{12})/.exec(stdout)?.[1];
  if (!id) throw new Error(`no sweep id in: ${stdout}`);
  return id;
}

async function withDb<T>(url: string, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb({ url });
  try {
    return await fn(db);
  } finally {
    await db.$disconnect();
  }
}

describe('a sweep carries its own definition', () => {
  it('submitted to database A while the collector writes B: B gets the sweep\'s name, label, plan, baseline and results', async () => {
    const r = await rig('def-travels'); // r.dbUrl: B, the collector's
    const a = `file:${join(r.dir, 'submitter.db')}`;
    const file = join(r.dir, 'travels.yaml');
    writeFileSync(file, sweepText(r.pool, 'travels'));
    const collector = await startCollector(r, r.dbUrl);
    const sub = await runCli(r, ['sweep', 'submit', file, '--label', 'nightly'], { DATABASE_URL: a });
    expect(sub.exitCode, String(sub.stderr)).toBe(0);
    const id = sweepIdOf(String(sub.stdout));
    // The one line that lets a user see the two databases differ.
    expect(String(sub.stdout)).toContain(`plan recorded in SQLite ${a.slice('file:'.length)} (DATABASE_URL); the collector records it in its own database from the jobs`);

    // Redis holds the definition once; each job names it by hash and holds none of it.
    const stored = await r.client.hgetBuffer(definitionKey(id, r.prefix), 'def');
    const hash = await r.client.hget(definitionKey(id, r.prefix), 'hash');
    expect(stored).not.toBeNull();
    expect(await r.client.ttl(definitionKey(id, r.prefix))).toBe(-1); // no expiry while the sweep has work
    const q = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
    const jobs = await q.getWaiting(0, 100);
    await q.close();
    expect(jobs).toHaveLength(8);
    for (const j of jobs) {
      expect(j.data.definition).toBe(hash);
      expect(JSON.stringify(j.data)).not.toContain('"spec"');
    }

    const started = Date.now();
    await startWorker(r, r.pool, 'w1');
    await waitFor('the sweep to finish in B', () => settled(r.db, id, 8), 90_000);
    const sweepInB = await r.db.sweep.findUniqueOrThrow({ where: { id } });
    const sweepInA = await withDb(a, (db) => db.sweep.findUniqueOrThrow({ where: { id } }));
    // The same Sweep row as the submitter wrote, not `(unplanned)` with an empty spec.
    expect({ ...sweepInB, createdAt: null }).toEqual({ ...sweepInA, createdAt: null });
    expect(sweepInB).toMatchObject({ name: 'travels', label: 'nightly', pool: r.pool, points: 4, runs: 8, source: file });
    expect(JSON.parse(sweepInB.spec)).toMatchObject({ baseline: { variant: 'fused' }, repeat: 2 });
    const runs = await outcomes(r.db, id);
    expect(runs.map((x) => [x.status, x.results])).toEqual(Array(8).fill(['done', 1]));
    // The plan's rows are the submitter's (ids, group hashes, parameters).
    const rowsOf = (db: Db) => db.run.findMany({ where: { sweepId: id }, select: { id: true, groupHash: true, rep: true, params: true }, orderBy: { id: 'asc' } });
    expect(await rowsOf(r.db)).toEqual(await withDb(a, rowsOf));
    expect(collector.output()).toContain(`sweep ${id} (travels): plan recorded from its jobs' definition (8 runs`);

    // results compare on B: the sweep's own baseline, by name.
    const cmp = await runCli(r, ['results', 'compare', '--sweep', id, '--json'], { DATABASE_URL: r.dbUrl });
    expect(cmp.exitCode, String(cmp.stderr)).toBe(0);
    const c = JSON.parse(String(cmp.stdout)) as { name: string; baseline: string; baselineBy: string };
    expect(c).toMatchObject({ name: 'travels', baseline: 'fused', baselineBy: 'variant' });
    const text = await runCli(r, ['results', 'compare', '--sweep', id], { DATABASE_URL: r.dbUrl });
    expect(String(text.stdout)).toContain(`sweep ${id} (travels): baseline fused`);
    expect(String(text.stdout)).not.toContain('(unplanned)');
    // The sweep ended: its definition expires after the grace period, like its bundles.
    await waitFor('the definition to get an expiry', async () => (await r.client.ttl(definitionKey(id, r.prefix))) > 0, 10_000);
    // A resume with nothing to enqueue leaves it to expire.
    const resume = await runCli(r, ['sweep', 'resume', id], { DATABASE_URL: r.dbUrl });
    expect(String(resume.stdout)).toContain('nothing to resume');
    expect(await r.client.ttl(definitionKey(id, r.prefix))).toBeGreaterThan(0);
    report('plan submitted to A, collector on B', { runs: 8, seconds: (Date.now() - started) / 1000, definitionBytes: stored!.length });
  }, 180_000);

  it('a definition gone from Redis: the results are recorded under (unplanned), with a warning naming the sweep', async () => {
    const r = await rig('def-gone');
    const a = `file:${join(r.dir, 'submitter.db')}`;
    const file = join(r.dir, 'gone.yaml');
    writeFileSync(file, sweepText(r.pool, 'gone').replace('repeat: 2', 'repeat: 1').replace('[1, 2]', '[1]'));
    const sub = await runCli(r, ['sweep', 'submit', file], { DATABASE_URL: a });
    expect(sub.exitCode, String(sub.stderr)).toBe(0);
    const id = sweepIdOf(String(sub.stdout));
    await r.client.del(definitionKey(id, r.prefix));
    const collector = await startCollector(r, r.dbUrl);
    await startWorker(r, r.pool, 'w1');
    await waitFor('both runs in B', () => settled(r.db, id, 2), 60_000);
    expect((await r.db.sweep.findUniqueOrThrow({ where: { id } })).name).toBe('(unplanned)');
    expect((await outcomes(r.db, id)).map((x) => x.status)).toEqual(['done', 'done']);
    // Said once, not per outcome.
    const warnings = collector.output().split('\n').filter((l) => l.includes(`sweep ${id}: its jobs name a definition that Redis no longer holds`));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('submitting its sweep file with this DATABASE_URL records the plan');
    // As the warning says: the sweep file submitted against B records the plan there, the results kept.
    const again = await runCli(r, ['sweep', 'submit', file], { DATABASE_URL: r.dbUrl });
    expect(again.exitCode, String(again.stderr)).toBe(0);
    expect(String(again.stdout)).toContain('enqueued 0 (0 already queued, 2 already done)');
    expect((await r.db.sweep.findUniqueOrThrow({ where: { id } })).name).toBe('gone');
  }, 120_000);

  for (const provider of ['sqlite', 'postgres'] as const) {
    it(`two simultaneous submits of one sweep file (${provider}): both exit 0, one says already submitted, no run row or job twice`, async () => {
      const pg = provider === 'postgres' ? await freshPostgres() : null;
      try {
        const r = await rig(`def-twice-${provider}`, pg ? { dbUrl: pg.url } : {});
        const file = join(r.dir, 'twice.yaml');
        writeFileSync(file, sweepText(r.pool, 'twice'));
        const env = { DATABASE_URL: r.dbUrl };
        const [one, two] = await Promise.all([runCli(r, ['sweep', 'submit', file, '--json'], env), runCli(r, ['sweep', 'submit', file, '--json'], env)]);
        expect(one.exitCode, String(one.stderr)).toBe(0);
        expect(two.exitCode, String(two.stderr)).toBe(0);
        const reports = [one, two].map((x) => JSON.parse(String(x.stdout)) as { sweepId: string; enqueued: number; alreadyQueued: number; alreadySubmitted: boolean });
        expect(reports[0]!.sweepId).toBe(reports[1]!.sweepId);
        const id = reports[0]!.sweepId;
        // One wrote the plan and enqueued every run; the other found both done.
        const [first, second] = [...reports].sort((x, y) => Number(x.alreadySubmitted) - Number(y.alreadySubmitted));
        expect(first).toMatchObject({ alreadySubmitted: false, enqueued: 8, alreadyQueued: 0 });
        expect(second).toMatchObject({ alreadySubmitted: true, enqueued: 0, alreadyQueued: 8 });
        expect(await r.db.sweep.count({ where: { id } })).toBe(1);
        expect(await r.db.run.count({ where: { sweepId: id } })).toBe(8);
        const q = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
        const counts = await q.getJobCounts();
        await q.close();
        expect(counts['waiting']).toBe(8);
        // The text form says it too.
        const text = await runCli(r, ['sweep', 'submit', file], env);
        expect(String(text.stdout)).toContain(`sweep ${id} (twice): 4 points, 8 jobs on pool ${r.pool}; already submitted; enqueued 0 (8 already queued, 0 already done)`);
        report(`two submits at once (${provider})`, { runs: 8, rows: 8, jobs: counts['waiting'] ?? -1 });
      } finally {
        await teardown();
        await pg?.drop();
      }
    }, 120_000);
  }

  it('the definition read back writes the rows the plan writes', async () => {
    const plan = tinyPlan('p', { variants: ['reference', 'fused'], tokens: [1, 2, 3], repeat: 3 });
    const enc = await encodeDefinition(plan, 'x.yaml', 'L');
    const def = await decodeDefinition(enc.blob);
    const want = planRowsOf(plan, 'x.yaml');
    expect(def).toMatchObject({ sweepId: plan.sweepId, hash: enc.hash, label: 'L', source: 'x.yaml', name: plan.sweep.name });
    expect(def.rows.row).toEqual(want.row);
    expect(def.rows.sources).toEqual(want.sources);
    const rows = (p: typeof want) => p.runs.map((r, i) => [r.id, r.groupHash, r.rep, p.params(i)]).sort();
    expect(rows(def.rows)).toEqual(rows(want));
    expect(def.rows.runs).toHaveLength(18);
    // A label changed by a re-submit keeps the hash the queued jobs name.
    expect((await encodeDefinition(plan, 'y.yaml', 'M')).hash).toBe(enc.hash);
  });
});
