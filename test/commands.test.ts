/**
 * The commands a user reaches for after the first sweep, used as a user would
 * (the built CLI as a child process) against a real farm: a worker and a
 * collector in this process on real Redis, SQLite or Postgres, and the real
 * CPU binary. sweep list / cancel / retry, submit --label / --retry,
 * results export / compare --against, db prune, the no-worker warning.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queuePrefix } from '../src/config.js';
import { recordPlan } from '../src/db/plan.js';
import { runQueueName } from '../src/queue/names.js';
import { RUN_JOB_OPTIONS } from '../src/queue/options.js';
import { planBundles } from '../src/queue/submit.js';
import { toJob } from '../src/queue/job.js';
import { storeBundles } from '../src/source/store.js';
import { planSweep, type Plan } from '../src/sweep/expand.js';
import { loadSweepFile } from '../src/sweep/load.js';
import type { RunJob } from '../src/schema/job.js';
import { farmFor, runsSettled, type Farm } from './helpers/farm.js';
import { cli, waitFor } from './helpers/services.js';

let cleanups: Array<() => unknown> = [];
beforeEach(() => {
  cleanups = [];
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Setup {
  farm: Farm;
  pool: string;
  dbUrl: string;
  dir: string;
  env: Record<string, string>;
  /** Writes a sweep file for this test's pool; returns its path. */
  sweepFile: (name: string, matrix: string, extra?: string) => string;
}

async function setup(kind: 'sqlite' | 'postgres' = 'sqlite'): Promise<Setup> {
  const { farm, pool, dbUrl, dir } = await farmFor('cmd', kind, cleanups, { testHooks: true });
  const sweepFile = (name: string, matrix: string, extra = '') => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `name: ${name}\npool: ${pool}\ntimeout_s: 60\n${extra}matrix:\n  model: tiny\n  warmup: 1\n  iters: 8\n${matrix}`);
    return file;
  };
  return { farm, pool, dbUrl, dir, env: { DATABASE_URL: dbUrl }, sweepFile };
}

/** Records and enqueues a sweep file's plan as submit does, with TEST ONLY hooks on chosen jobs. */
async function enqueueWithHooks(s: Setup, file: string, hooks: (index: number) => RunJob['test']): Promise<Plan> {
  const plan = planSweep(await loadSweepFile(file), { file });
  await storeBundles(s.farm.redis, plan.sweepId, planBundles(plan));
  await recordPlan(s.farm.db, plan, file);
  const q = new Queue(runQueueName(s.pool), { connection: s.farm.redis, prefix: queuePrefix() });
  const now = Date.now();
  await q.addBulk(
    plan.runs.map((r, i) => {
      const test = hooks(i);
      return { name: 'run', data: { ...toJob(plan, r, now), ...(test ? { test } : {}) }, opts: { ...RUN_JOB_OPTIONS, jobId: r.id } };
    }),
  );
  await q.close();
  return plan;
}

function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

describe('sweep submit --label and sweep list', () => {
  it('stores the label, lists sweeps newest first with their counts, filters by label and date', async () => {
    const s = await setup();
    const a = await cli(['sweep', 'submit', s.sweepFile('list-a', '  variant: reference\n  tokens: [1, 2]\n'), '--label', 'nightly-1', '--json'], s.env);
    expect(a.stderr).toBe('');
    const ra = json<{ sweepId: string; label: string; warning: string | null }>(a.stdout);
    expect(ra).toMatchObject({ label: 'nightly-1', warning: null });
    await waitFor('sweep a to finish', () => runsSettled(s.farm.db, ra.sweepId, 2));
    const b = await cli(['sweep', 'submit', s.sweepFile('list-b', '  variant: fused\n  tokens: 1\n'), '--label', 'nightly-2', '--json'], s.env);
    const rb = json<{ sweepId: string }>(b.stdout);
    await waitFor('sweep b to finish', () => runsSettled(s.farm.db, rb.sweepId, 1));

    const all = json<Array<{ id: string; label: string | null; runs: number; done: number; failed: number; queued: number; createdAt: string }>>((await cli(['sweep', 'list', '--json'], s.env)).stdout);
    expect(all.map((x) => x.id)).toEqual([rb.sweepId, ra.sweepId]);
    expect(all[1]).toMatchObject({ label: 'nightly-1', runs: 2, done: 2, failed: 0, queued: 0 });

    const byLabel = json<Array<{ id: string }>>((await cli(['sweep', 'list', '--label', 'nightly-1', '--json'], s.env)).stdout);
    expect(byLabel.map((x) => x.id)).toEqual([ra.sweepId]);
    const created = all[1]!.createdAt;
    const since = json<Array<{ id: string }>>((await cli(['sweep', 'list', '--since', all[0]!.createdAt, '--json'], s.env)).stdout);
    expect(since.map((x) => x.id)).toEqual([rb.sweepId]);
    const until = json<Array<{ id: string }>>((await cli(['sweep', 'list', '--until', all[0]!.createdAt, '--json'], s.env)).stdout);
    expect(until.map((x) => x.id)).toEqual([ra.sweepId]);
    expect(Date.parse(created)).toBeGreaterThan(Date.now() - 600_000);

    const table = (await cli(['sweep', 'list'], s.env)).stdout;
    expect(table).toMatch(/^sweep\s+name\s+label\s+pool\s+created \(UTC\)\s+runs\s+done\s+failed\s+cancelled\s+queued/);
    expect(table).toContain('nightly-2');

    // The same sweep submitted with another label keeps its id and runs, and takes the label.
    const again = await cli(['sweep', 'submit', join(s.dir, 'list-a.yaml'), '--label', 'keep'], s.env);
    expect(again.stdout).toMatch(new RegExp(`sweep ${ra.sweepId} \\(list-a\\): .*enqueued 0 \\(0 already queued, 2 already done\\); label keep \\(was nightly-1\\)`));
  });

  it('warns at submit and in sweep status when no live worker serves the pool', async () => {
    const s = await setup();
    const file = join(s.dir, 'nobody.yaml');
    writeFileSync(file, `name: nobody\npool: ${s.pool}-misspelt\nmatrix:\n  model: tiny\n  variant: reference\n  tokens: 1\n`);
    const r = await cli(['sweep', 'submit', file], s.env);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: no live worker serves pool ${s.pool}-misspelt .*live workers serve: .*${s.pool}`));
    const id = /sweep (s[0-9a-f]+) /.exec(r.stdout)![1]!;
    const status = await cli(['sweep', 'status', id], s.env);
    expect(status.stdout).toMatch(new RegExp(`warning: no live worker serves pool ${s.pool}-misspelt`));
    const st = json<{ pools: Array<{ liveWorkers: number; warning: string | null }> }>((await cli(['sweep', 'status', id, '--json'], s.env)).stdout);
    expect(st.pools[0]).toMatchObject({ liveWorkers: 0 });
    expect(st.pools[0]!.warning).toMatch(/no live worker/);
    // The pool with a worker gets no warning.
    const ok = await cli(['sweep', 'submit', s.sweepFile('somebody', '  variant: reference\n  tokens: 1\n')], s.env);
    expect(ok.stderr).toBe('');
  });
});

describe('sweep cancel and sweep retry', () => {
  it('cancel removes waiting jobs, stops the running one, marks the runs cancelled; retry runs them again', async () => {
    const s = await setup();
    const file = s.sweepFile('cancel-me', '  variant: reference\n  tokens: [1, 2, 3, 4]\n');
    // The first job sleeps 30 s in the binary; the other three wait behind it (one worker).
    const plan = await enqueueWithHooks(s, file, (i) => (i === 0 ? { sleepMs: 30_000 } : undefined));
    // The slow job itself running and the other three still waiting (on a loaded machine a worker can be slow to
    // take the first job, and cancel is meant to find exactly this state).
    const runQ = new Queue(runQueueName(s.pool), { connection: s.farm.redis, prefix: queuePrefix() });
    await waitFor('the slow job to start with the others waiting', async () => {
      const active = await runQ.getActive();
      return active.length === 1 && active[0]!.id === plan.runs[0]!.id && (await runQ.getWaitingCount()) === 3 ? true : null;
    });
    await runQ.close();

    const t0 = Date.now();
    const c = await cli(['sweep', 'cancel', plan.sweepId, '--json'], s.env);
    expect(c.exitCode).toBe(0);
    expect(json(c.stdout)).toMatchObject({ sweepId: plan.sweepId, removed: 3, running: 1, cancelled: 4 });
    const runs = await s.farm.db.run.findMany({ where: { sweepId: plan.sweepId }, orderBy: { id: 'asc' } });
    expect(runs.map((r) => r.status)).toEqual(Array(4).fill('cancelled'));
    expect(runs.filter((r) => /while a worker ran it/.test(r.reason ?? ''))).toHaveLength(1);
    // The worker stopped the binary long before its 30 s sleep ended, and reported the run cancelled (a duplicate now).
    await waitFor('the worker to stop the cancelled run', async () => s.farm.worker.processed === 1, 20_000, 100);
    expect(Date.now() - t0).toBeLessThan(20_000);
    await waitFor('the worker outcome to reach the collector', async () => s.farm.collector.duplicates === 1);
    const q = new Queue(runQueueName(s.pool), { connection: s.farm.redis, prefix: queuePrefix() });
    expect(await q.getJobCounts('waiting', 'delayed', 'active')).toEqual({ waiting: 0, delayed: 0, active: 0 });
    await q.close();
    expect((await cli(['sweep', 'status', plan.sweepId], s.env)).stdout).toMatch(/done 0\s+running 0\s+failed 0\s+cancelled 4\s+waiting 0/);

    // Retry: the same runs go back in the queue (without the TEST ONLY sleep: the job comes from the recorded plan) and finish.
    const r = await cli(['sweep', 'retry', plan.sweepId, '--status', 'cancelled,crashed', '--json'], s.env);
    expect(r.exitCode).toBe(0);
    expect(json(r.stdout)).toMatchObject({ retried: { cancelled: 4 }, requeued: 0, skipped: [] });
    await waitFor('the retried runs to finish', () => runsSettled(s.farm.db, plan.sweepId, 4));
    const after = await s.farm.db.run.findMany({ where: { sweepId: plan.sweepId }, include: { results: true }, orderBy: { id: 'asc' } });
    for (const run of after) {
      expect(run.status).toBe('done');
      expect(run.retries).toBe(1);
      expect(run.results).toHaveLength(1);
      expect(JSON.parse(run.previous!)).toEqual([expect.objectContaining({ status: 'cancelled', reason: expect.stringMatching(/^sweep cancelled at /) })]);
    }
    expect(after.map((x) => x.id)).toEqual(runs.map((x) => x.id));
    // Nothing left to retry; a done run is never retried.
    expect((await cli(['sweep', 'retry', plan.sweepId], s.env)).stdout).toMatch(/nothing to retry/);
    const bad = await cli(['sweep', 'retry', plan.sweepId, '--status', 'done'], s.env);
    expect(bad.exitCode).toBe(2);
    expect((await cli(['sweep', 'cancel', plan.sweepId], s.env)).stdout).toMatch(/nothing to cancel, every run has an outcome \(done 4\)/);
  }, 120_000);

  it('re-submitting says which runs ended without a result; --retry runs them again', async () => {
    const s = await setup();
    const file = s.sweepFile('crashy', '  variant: reference\n  tokens: [1, 2]\n');
    const plan = await enqueueWithHooks(s, file, (i) => (i === 0 ? { output: 'exit3' } : undefined));
    await waitFor('the sweep to finish', () => runsSettled(s.farm.db, plan.sweepId, 2));
    expect((await s.farm.db.run.findMany({ where: { sweepId: plan.sweepId } })).map((r) => r.status).sort()).toEqual(['crashed', 'done']);

    const plain = await cli(['sweep', 'submit', file], s.env);
    expect(plain.stdout).toMatch(/enqueued 0 \(0 already queued, 1 already done\); 1 ended without a result \(crashed 1\): moefarm sweep retry s[0-9a-f]+ runs them again/);
    const retry = await cli(['sweep', 'submit', file, '--retry', 'crashed', '--json'], s.env);
    expect(retry.exitCode).toBe(0);
    expect(json(retry.stdout)).toMatchObject({ sweepId: plan.sweepId, alreadyDone: 1, retry: { retried: { crashed: 1 } }, alreadyEnded: {} });
    await waitFor('the retried run to finish', () => runsSettled(s.farm.db, plan.sweepId, 2));
    const runs = await s.farm.db.run.findMany({ where: { sweepId: plan.sweepId } });
    expect(runs.map((r) => r.status)).toEqual(['done', 'done']);
    expect(await s.farm.db.result.count({ where: { run: { sweepId: plan.sweepId } } })).toBe(2);
    const list = json<Array<{ id: string; retries: number; previous: string | null }>>((await cli(['results', 'list', '--sweep', plan.sweepId, '--json'], s.env)).stdout);
    expect(list.find((r) => r.retries === 1)?.previous).toMatch(/"status":"crashed"/);
  }, 120_000);
});

describe('results export and results compare across sweeps', () => {
  it('exports one row per raw sample with the run\'s conditions, and compares two sweeps and two labels point by point', async () => {
    const s = await setup();
    const matrix = '  variant: [reference, fused]\n  tokens: [1, 2]\n';
    const subA = json<{ sweepId: string }>((await cli(['sweep', 'submit', s.sweepFile('cmp-a', matrix, 'repeat: 2\n'), '--label', 'old', '--json'], s.env)).stdout);
    const subB = json<{ sweepId: string }>((await cli(['sweep', 'submit', s.sweepFile('cmp-b', matrix, 'repeat: 2\n'), '--label', 'new', '--json'], s.env)).stdout);
    await waitFor('both sweeps to finish', async () => (await runsSettled(s.farm.db, subA.sweepId, 8)) && runsSettled(s.farm.db, subB.sweepId, 8));

    const csv = await cli(['results', 'export', '--sweep', subA.sweepId, '--csv'], s.env);
    expect(csv.exitCode).toBe(0);
    const [header, ...rows] = csv.stdout.trim().split('\n');
    const cols = header!.split(',');
    expect(cols).toEqual(expect.arrayContaining(['run', 'rep', 'build', 'variant', 'model', 'tokens', 'dtype', 'clock', 'power', 'gpu', 'round', 'sample', 'latency_us']));
    expect(rows).toHaveLength(8 * 8); // 8 runs x 8 timed iterations
    const at = (row: string, c: string) => row.split(',')[cols.indexOf(c)]!;
    expect(new Set(rows.map((r) => at(r, 'variant')))).toEqual(new Set(['reference', 'fused']));
    expect(new Set(rows.map((r) => at(r, 'tokens')))).toEqual(new Set(['1', '2']));
    expect(new Set(rows.map((r) => at(r, 'rep')))).toEqual(new Set(['0', '1']));
    for (const r of rows) {
      expect(at(r, 'label')).toBe('old');
      expect(at(r, 'build')).toBe('default');
      expect(at(r, 'gpu')).toBe('cpu');
      expect(Number(at(r, 'latency_us'))).toBeGreaterThan(0);
    }
    // The samples are the stored ones, in order.
    const stored = await s.farm.db.result.findMany({ where: { run: { sweepId: subA.sweepId } } });
    const total = stored.reduce((n, x) => n + (JSON.parse(x.samplesUs) as number[]).length, 0);
    expect(total).toBe(rows.length);
    const one = stored[0]!;
    const mine = rows.filter((r) => at(r, 'run') === one.runId && at(r, 'variant') === one.variant).map((r) => Number(at(r, 'latency_us')));
    expect(mine).toEqual(JSON.parse(one.samplesUs));
    const lines = (await cli(['results', 'export', '--sweep', subA.sweepId, '--json'], s.env)).stdout.trim().split('\n');
    expect(lines).toHaveLength(64);
    expect(JSON.parse(lines[0]!)).toMatchObject({ sweep: subA.sweepId, model: 'tiny', dtype: 'bf16' });

    const cmp = json<{ armsAre: string; baseline: string; rows: Array<{ build: string; variant: string; verdict: string; point: string; runs: number }> }>(
      (await cli(['results', 'compare', '--sweep', subA.sweepId, '--against', subB.sweepId, '--json'], s.env)).stdout,
    );
    expect(cmp).toMatchObject({ armsAre: 'sweep', baseline: subB.sweepId });
    expect(cmp.rows).toHaveLength(8); // 2 points x 2 variants x 2 sweeps
    for (const row of cmp.rows) {
      expect(row.runs).toBe(2);
      if (row.build === subB.sweepId) expect(row.verdict).toBe('BASELINE');
      else expect(['FASTER', 'SLOWER', 'SAME', 'UNSURE']).toContain(row.verdict);
    }
    const text = (await cli(['results', 'compare', '--label', 'old', '--against-label', 'new'], s.env)).stdout;
    expect(text).toMatch(/against label new \(each point and variant against the same point and variant there/);
    expect(text).toMatch(/^point\s+sweep|^point\s+label/m);
    expect(text.split('\n').filter((l) => /^tiny T=\d bf16\s+(old|new)\s/.test(l))).toHaveLength(8);
  }, 120_000);
});

describe.each(['sqlite', 'postgres'] as const)('db prune on %s', (kind) => {
  it('says what it would delete, deletes sweeps with their runs and results, and keeps unfinished ones', async () => {
    const s = await setup(kind);
    const done = json<{ sweepId: string }>((await cli(['sweep', 'submit', s.sweepFile('prune-done', '  variant: reference\n  tokens: [1, 2]\n'), '--json'], s.env)).stdout);
    await waitFor('the sweep to finish', () => runsSettled(s.farm.db, done.sweepId, 2));
    // A sweep whose run waits for ever: its job sleeps in the binary.
    const busy = await enqueueWithHooks(s, s.sweepFile('prune-busy', '  variant: reference\n  tokens: 1\n'), () => ({ sleepMs: 30_000 }));

    const dry = json<{ dryRun: boolean; sweeps: Array<{ id: string; runs: number; results: number }>; runs: number; results: number; unfinished: Array<{ id: string }> }>(
      (await cli(['db', 'prune', '--before', '2999-01-01', '--dry-run', '--json'], s.env)).stdout,
    );
    expect(dry).toMatchObject({ dryRun: true, runs: 2, results: 2, unfinished: [{ id: busy.sweepId }] });
    expect(dry.sweeps.map((x) => x.id)).toEqual([done.sweepId]);
    expect(await s.farm.db.run.count({ where: { sweepId: done.sweepId } })).toBe(2);

    const real = await cli(['db', 'prune', '--before', '2999-01-01'], s.env);
    expect(real.stdout).toMatch(/^deleted 1 sweep\(s\), 2 run\(s\), 2 result\(s\)/);
    expect(real.stdout).toMatch(new RegExp(`kept sweep ${busy.sweepId}: 1 run\\(s\\) still without an outcome`));
    expect(await s.farm.db.sweep.findMany({ select: { id: true } })).toEqual([{ id: busy.sweepId }]);
    expect(await s.farm.db.run.count({ where: { sweepId: done.sweepId } })).toBe(0);
    expect(await s.farm.db.result.count()).toBe(0);
    if (kind === 'postgres') return; // the rest is the same SQL on both: once is enough

    const refused = await cli(['db', 'prune', '--sweep', busy.sweepId], s.env);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/not deleted, 1 run\(s\) still without an outcome; cancel it first/);
    expect(await s.farm.db.sweep.count({ where: { id: busy.sweepId } })).toBe(1);
    expect(json<{ sweeps: unknown[] }>((await cli(['db', 'prune', '--before', '2000-01-01', '--json'], s.env)).stdout).sweeps).toEqual([]);

    // Cancelled, it can go.
    await cli(['sweep', 'cancel', busy.sweepId], s.env);
    const gone = await cli(['db', 'prune', '--sweep', busy.sweepId], s.env);
    expect(gone.exitCode).toBe(0);
    expect(gone.stdout).toMatch(/^deleted 1 sweep\(s\), 1 run\(s\), 0 result\(s\)/);
    expect(await s.farm.db.sweep.count()).toBe(0);
  }, 120_000);
});
