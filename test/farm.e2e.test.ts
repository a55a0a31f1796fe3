/**
 * The whole path with real parts: sweep file → Redis (BullMQ) → worker → the
 * real CPU binary → collector → SQLite and Postgres → comparison.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queuePrefix } from '../src/config.js';
import { RESULTS_QUEUE, runQueueName } from '../src/queue/names.js';
import { planBundles, submitPlan } from '../src/queue/submit.js';
import { toJob } from '../src/queue/job.js';
import { storeBundles } from '../src/source/store.js';
import { RUN_JOB_OPTIONS } from '../src/queue/options.js';
import { recordPlan } from '../src/db/plan.js';
import { compareSweep } from '../src/results/compare.js';
import { loadSweepResults } from '../src/results/load.js';
import { planSweep, type PlannedRun } from '../src/sweep/expand.js';
import { parseSweepText } from '../src/sweep/load.js';
import { startFarm, runsSettled, type Farm } from './helpers/farm.js';
import { cli, freshPostgres, freshPrefix, scratch, ROOT, sqliteUrl, tempDir, waitFor } from './helpers/services.js';

const SWEEP = (pool: string) => `
name: e2e
pool: ${pool}
repeat: 2
timeout_s: 60
baseline: {variant: reference}
matrix:
  variant: [reference, fused]
  model: tiny
  tokens: [1, 4]
  warmup: 2
  iters: 10
`;

let cleanups: Array<() => unknown> = [];
beforeEach(() => {
  cleanups = [];
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(kind: 'sqlite' | 'postgres'): Promise<{ farm: Farm; pool: string; dbUrl: string }> {
  const p = freshPrefix();
  cleanups.push(p.cleanup);
  let dbUrl: string;
  if (kind === 'sqlite') {
    const t = tempDir('e2e');
    cleanups.push(t.cleanup);
    dbUrl = sqliteUrl(t.dir);
  } else {
    const pg = await freshPostgres();
    cleanups.push(pg.drop);
    dbUrl = pg.url;
  }
  const pool = `pool-${p.prefix}`;
  const farm = await startFarm({ dbUrl, pool, testHooks: true });
  cleanups.push(farm.close);
  return { farm, pool, dbUrl };
}

describe.each(['sqlite', 'postgres'] as const)('end to end on %s', (kind) => {
  it('runs a CPU sweep into the database and compares it', async () => {
    const { farm, pool } = await setup(kind);
    const plan = planSweep(parseSweepText(SWEEP(pool), 'e2e.yaml'));
    const report = await submitPlan(farm.db, farm.redis, plan, 'e2e.yaml');
    expect(report).toMatchObject({ points: 4, runs: 8, enqueued: 8, alreadyQueued: 0, alreadyDone: 0 });
    await waitFor('the sweep to finish', () => runsSettled(farm.db, plan.sweepId, 8), 240_000); // includes a cold CPU build

    const runs = await farm.db.run.findMany({ where: { sweepId: plan.sweepId }, include: { results: true } });
    expect(runs.map((r) => r.status)).toEqual(Array(8).fill('done'));
    for (const r of runs) {
      expect(r.results).toHaveLength(1);
      const res = r.results[0]!;
      expect(res.checkPass).toBe(true);
      expect(JSON.parse(res.samplesUs)).toHaveLength(10);
      expect(res.median).toBeGreaterThan(0);
      expect(r.workerId).toContain(pool);
      expect(r.buildKey).toMatch(/^[0-9a-f]{24}$/);
    }
    const worker = await farm.db.worker.findFirstOrThrow();
    expect(worker.compiler).toMatch(/g\+\+/);
    const build = await farm.db.build.findFirstOrThrow();
    expect(build.flags).toContain('-O3');

    const cmp = compareSweep(await loadSweepResults(farm.db, plan.sweepId), null);
    expect(cmp.baseline).toBe('reference');
    expect(cmp.rows).toHaveLength(4);
    for (const row of cmp.rows) {
      expect(row.samples).toBe(20);
      expect(row.p10Us).toBeLessThanOrEqual(row.medianUs);
      expect(row.medianUs).toBeLessThanOrEqual(row.p90Us);
      if (row.variant === 'reference') expect(row.speedup).toBe(1);
      else expect(row.speedup).toBeCloseTo(cmp.rows.find((x) => x.point === row.point && x.variant === 'reference')!.medianUs / row.medianUs, 10);
    }
  });

  it('stores a result delivered twice once', async () => {
    const { farm, pool } = await setup(kind);
    const plan = planSweep(parseSweepText(SWEEP(pool).replace('repeat: 2', 'repeat: 1').replace('tokens: [1, 4]', 'tokens: [1]'), 'dup.yaml'));
    await submitPlan(farm.db, farm.redis, plan, null);
    await waitFor('the sweep to finish', () => runsSettled(farm.db, plan.sweepId, 2));
    const before = await farm.db.result.findMany({ orderBy: { id: 'asc' } });
    expect(before).toHaveLength(2);
    // Deliver every outcome again, as a lost acknowledgement would: new message ids, same runs.
    const results = new Queue(RESULTS_QUEUE, { connection: farm.redis, prefix: queuePrefix() });
    // The collector writes a batch to the database before BullMQ marks its messages completed: wait for both.
    await waitFor('both outcome messages completed', async () => (await results.getCompletedCount()) === 2);
    const done = await results.getCompleted();
    expect(done).toHaveLength(2);
    const dupBefore = farm.collector.duplicates;
    for (const j of done) await results.add('outcome', j.data, { jobId: `${j.id}-again` });
    await waitFor('the duplicates to be processed', async () => farm.collector.duplicates === dupBefore + 2);
    await results.close();
    const after = await farm.db.result.findMany({ orderBy: { id: 'asc' } });
    expect(after).toEqual(before);
    expect(await farm.db.run.count()).toBe(2);
  });
});

describe('failure paths', () => {
  it('records a compile error permanently, with the compiler message kept', async () => {
    const { farm, pool } = await setup('sqlite');
    await farm.close();
    const t = tempDir('csrc');
    cleanups.push(t.cleanup);
    cpSync(join(ROOT, 'csrc'), t.dir, { recursive: true, filter: (src) => !/[\\/]csrc[\\/]build([\\/]|$)/.test(src) });
    const main = join(t.dir, 'src', 'main.cpp');
    writeFileSync(main, readFileSync(main, 'utf8') + '\nthis is not C++;\n');
    // The broken source is the submitted one (--source); the worker's own checkout is sound and never built.
    const broken = await startFarm({ dbUrl: sqliteUrl(t.dir), pool });
    cleanups.push(broken.close);
    const plan = planSweep(parseSweepText(SWEEP(pool).replace('repeat: 2', 'repeat: 1').replace('[reference, fused]', '[reference]').replace('tokens: [1, 4]', 'tokens: [1]'), 'ce.yaml'), { sourceDir: t.dir });
    await submitPlan(broken.db, broken.redis, plan, null);
    // A build from a fresh source: about a minute on a busy 2-core machine before make reaches main.cpp.
    await waitFor('the run to fail', () => runsSettled(broken.db, plan.sweepId, 1), 240_000);
    const run = await broken.db.run.findFirstOrThrow({ where: { sweepId: plan.sweepId } });
    expect(run.status).toBe('compile-error');
    expect(run.attempts).toBe(1);
    expect(run.reason).toMatch(/build of cpu binary failed/);
    expect(run.stderrTail).toMatch(/main\.cpp.*error/);
  });

  it('kills a run at its timeout, records it, and goes on with the next job', async () => {
    const { farm, pool } = await setup('sqlite');
    const plan = planSweep(parseSweepText(SWEEP(pool).replace('repeat: 2', 'repeat: 1').replace('[reference, fused]', '[reference]'), 'to.yaml'));
    expect(plan.runs).toHaveLength(2);
    await recordPlan(farm.db, plan, null);
    await storeBundles(farm.redis, plan.sweepId, planBundles(plan));
    const q = new Queue(runQueueName(pool), { connection: farm.redis, prefix: queuePrefix() });
    const [hung, normal] = plan.runs as [PlannedRun, PlannedRun];
    // The first job's binary hangs (TEST ONLY hook); its timeout is 1 s.
    await q.add('run', { ...toJob(plan, hung, Date.now()), timeoutS: 1, test: { sleepMs: 120_000 } }, { ...RUN_JOB_OPTIONS, jobId: hung.id });
    await q.add('run', toJob(plan, normal, Date.now()), { ...RUN_JOB_OPTIONS, jobId: normal.id });
    await q.close();
    await waitFor('both runs to end', () => runsSettled(farm.db, plan.sweepId, 2));
    const timedOut = await farm.db.run.findUniqueOrThrow({ where: { id: hung.id } });
    expect(timedOut.status).toBe('timeout');
    expect(timedOut.reason).toMatch(/killed after the job's timeout of 1 s/);
    expect(timedOut.wallMs).toBeGreaterThanOrEqual(1000);
    expect(timedOut.wallMs).toBeLessThan(20_000); // SIGTERM (then SIGKILL), not the 120 s sleep
    const next = await farm.db.run.findUniqueOrThrow({ where: { id: normal.id }, include: { results: true } });
    expect(next.status).toBe('done');
    expect(next.results).toHaveLength(1);
  });
});

describe('the CLI', () => {
  it('refuses a malformed sweep file with exit code 2, naming the field, and enqueues nothing', async () => {
    const fresh = scratch('bad', cleanups);
    const file = join(fresh.dir, 'bad.yaml');
    writeFileSync(file, 'name: bad\nmatrix:\n  variant: [reference]\n  model: tiny\n  tokens: [1, zero]\n');
    const r = await cli(['sweep', 'submit', file], { DATABASE_URL: sqliteUrl(fresh.dir) });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${file}: matrix.tokens[1]: expected a token count`);
    expect(r.stdout).toBe('');
    const { Redis } = await import('ioredis');
    const redis = new Redis(process.env['REDIS_URL']!);
    expect(await redis.keys(`${fresh.prefix}:*`)).toEqual([]);
    redis.disconnect();
  });

  it('adds no jobs when the same sweep is submitted twice', async () => {
    const fresh = scratch('twice', cleanups);
    const file = join(fresh.dir, 'twice.yaml');
    writeFileSync(file, SWEEP(`twice-${fresh.prefix}`));
    const env = { DATABASE_URL: sqliteUrl(fresh.dir) };
    const dry = await cli(['sweep', 'submit', file, '--dry-run', '--json'], env);
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ points: 4, jobs: 8, dryRun: true });
    const first = await cli(['sweep', 'submit', file, '--json'], env);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ jobs: 8, enqueued: 8 });
    const second = await cli(['sweep', 'submit', file, '--json'], env);
    expect(JSON.parse(second.stdout)).toMatchObject({ jobs: 8, enqueued: 0, alreadyQueued: 8 });
    const { Redis } = await import('ioredis');
    const redis = new Redis(process.env['REDIS_URL']!, { maxRetriesPerRequest: null });
    const q = new Queue(runQueueName(`twice-${fresh.prefix}`), { connection: redis, prefix: fresh.prefix });
    expect(await q.getWaitingCount()).toBe(8);
    await q.close();
    redis.disconnect();
  });
});
