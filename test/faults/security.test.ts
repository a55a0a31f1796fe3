/**
 * Security basics with real processes:
 *  - a password-protected Redis (`redis://:pw@…`) and a TLS-only one
 *    (`rediss://…`, self-signed cert made with openssl, trusted through
 *    NODE_EXTRA_CA_CERTS) carry a whole sweep: CLI submit → worker → collector;
 *  - the password appears nowhere: not in any process's output, not in Redis's
 *    data (its append-only file holds every write), not in the database file;
 *  - a wrong password or a plain connection to the TLS port: exit 3, redacted;
 *  - a job pushed straight into Redis cannot make the worker run anything but
 *    the project's binary (payload validated; build flags through a shell:
 *    see the known bug below).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runQueueName } from '../../src/queue/names.js';
import { RUN_JOB_OPTIONS } from '../../src/queue/options.js';
import { planBundles } from '../../src/queue/submit.js';
import { toJob } from '../../src/queue/job.js';
import { storeBundles } from '../../src/source/store.js';
import { waitFor } from '../helpers/services.js';
import { rig, teardown, warmBuild, type Rig } from './common.js';
import { report, runCli, settled, startCollector, startWorker, type Proc } from './procs.js';
import { tinyPlan, tinySweepText } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

/** Every file under `dir`, recursively, as bytes (AOF parts, SQLite file and its WAL). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function holders(secret: string, files: string[]): string[] {
  return files.filter((f) => readFileSync(f).includes(secret));
}

async function sweepThrough(r: Rig, tag: string): Promise<{ procs: Proc[]; submitOut: string; runs: number }> {
  const collector = await startCollector(r, r.dbUrl);
  const worker = await startWorker(r, r.pool, `w-${tag}`);
  const file = join(r.dir, `${tag}.yaml`);
  writeFileSync(file, tinySweepText(r.pool, { name: tag, tokens: [1, 2] }));
  const sub = await runCli(r, ['sweep', 'submit', file, '--json'], { DATABASE_URL: r.dbUrl });
  expect(sub.exitCode, String(sub.stderr)).toBe(0);
  const { sweepId, jobs } = JSON.parse(String(sub.stdout)) as { sweepId: string; jobs: number };
  await waitFor('the sweep to finish', () => settled(r.db, sweepId, jobs), 30_000);
  expect(await r.db.run.count({ where: { sweepId, status: 'done' } })).toBe(jobs);
  await collector.stop();
  await worker.stop();
  return { procs: [collector, worker], submitOut: `${String(sub.stdout)}\n${String(sub.stderr)}`, runs: jobs };
}

describe.each([
  ['password', false],
  ['password and TLS', true],
] as const)('Redis with %s', (label, tls) => {
  it('carries a sweep end to end; the password is in no log, no Redis data, no database', async () => {
    const password = `pw-${randomBytes(12).toString('hex')}`;
    const r = await rig(tls ? 'tls' : 'auth', { password, tls });
    expect(r.redis.url.startsWith(tls ? 'rediss://:' : 'redis://:')).toBe(true);
    const { procs, submitOut, runs } = await sweepThrough(r, tls ? 'tls' : 'auth');
    const logs = procs.map((p) => p.output()).join('\n') + submitOut;
    expect(logs).not.toContain(password);
    // Redis's data: every write is in the append-only file; the database: the SQLite file and its WAL.
    await r.db.$disconnect();
    const files = filesUnder(r.dir).filter((f) => !f.endsWith('.pem') && !f.endsWith('.yaml'));
    expect(files.some((f) => f.includes('appendonly'))).toBe(true);
    expect(files.some((f) => f.endsWith('test.db'))).toBe(true);
    expect(holders(password, files)).toEqual([]);
    // Job data as the queue holds it.
    const q = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
    const jobs = await q.getJobs(['completed']);
    expect(jobs.length).toBe(runs);
    expect(JSON.stringify(jobs.map((j) => j.data))).not.toContain(password);
    await q.close();

    // A wrong password: exit 3, the URL redacted.
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    const bad = await runCli(r, ['sweep', 'status', 'nothing'], { REDIS_URL: r.redis.url.replace(password, wrong), DATABASE_URL: r.dbUrl });
    expect(bad.exitCode).toBe(3);
    expect(String(bad.stderr)).toMatch(/cannot reach Redis at redis?s?:\/\/\*\*\*@127\.0\.0\.1/);
    expect(String(bad.stderr)).not.toContain(wrong);
    if (tls) {
      // The port speaks TLS only: a plain connection is refused, not silently downgraded.
      const plain = await runCli(r, ['sweep', 'status', 'nothing'], { REDIS_URL: r.redis.url.replace('rediss://', 'redis://'), DATABASE_URL: r.dbUrl });
      expect(plain.exitCode).toBe(3);
      expect(String(plain.stderr)).not.toContain(password);
    }
    report(`Redis with ${label}`, { runs, filesGrepped: files.length, secretFound: 0, wrongPasswordExit: bad.exitCode });
  });
});

describe('jobs pushed straight into Redis', () => {
  const marker = (r: Rig) => join(r.dir, 'INJECTED');

  async function push(r: Rig, mutate: (job: ReturnType<typeof toJob>) => unknown): Promise<string> {
    const plan = tinyPlan(r.pool);
    const run = plan.runs[0]!;
    await storeBundles(r.client, plan.sweepId, planBundles(plan), r.prefix);
    const q = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
    await q.add('run', mutate(toJob(plan, run, Date.now())), { ...RUN_JOB_OPTIONS, attempts: 1, jobId: run.id });
    await q.close();
    return run.id;
  }

  async function finalState(r: Rig, id: string): Promise<{ state: string; reason: string }> {
    const q = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
    try {
      return await waitFor('the job to end', async () => {
        const state = await q.getJobState(id);
        if (state !== 'completed' && state !== 'failed') return null;
        const job = await q.getJob(id); // read after the state, so the reason is there
        return { state, reason: String(job?.failedReason ?? job?.returnvalue ?? '') };
      }, 60_000);
    } finally {
      await q.close();
    }
  }

  it('a variant carrying shell syntax is refused by the worker before anything runs', async () => {
    const r = await rig('inject-variant');
    rmSync(marker(r), { force: true });
    await startWorker(r, r.pool, 'w-inject');
    const id = await push(r, (j) => ({ ...j, points: j.points.map((p) => ({ ...p, point: { ...p.point, variant: `x$(touch ${marker(r)})` } })) }));
    const end = await finalState(r, id);
    expect(end.state).toBe('failed');
    expect(end.reason).toMatch(/invalid job payload: .*points\[0\]\.point\.variant/);
    expect(existsSync(marker(r))).toBe(false);
  });

  // RunJobSchema validates each build's flags with the sweep schema's allow-list (BuildFlagSchema), and its
  // commit as hex: make's recipes run through /bin/sh, so a job pushed straight into Redis must not smuggle a
  // command into CXXFLAGS_EXTRA or GIT_COMMIT.
  it('build flags carrying shell syntax are refused by the worker before make runs', async () => {
    const r = await rig('inject-flags');
    rmSync(marker(r), { force: true });
    await startWorker(r, r.pool, 'w-inject');
    const id = await push(r, (j) => ({ ...j, builds: j.builds.map((b) => ({ ...b, flags: [`-O2; touch ${marker(r)} #`] })) }));
    const end = await finalState(r, id);
    expect(end.state).toBe('failed');
    expect(end.reason).toMatch(/invalid job payload: .*builds\[0\]\.flags\[0\]/);
    expect(existsSync(marker(r))).toBe(false);
  });

  it('a commit carrying shell syntax is refused by the worker before make runs', async () => {
    const r = await rig('inject-commit');
    rmSync(marker(r), { force: true });
    await startWorker(r, r.pool, 'w-inject-commit');
    const id = await push(r, (j) => ({ ...j, builds: j.builds.map((b) => ({ ...b, source: { bundle: 'a'.repeat(64), commit: `x"; touch ${marker(r)}; "` } })) }));
    const end = await finalState(r, id);
    expect(end.state).toBe('failed');
    expect(end.reason).toMatch(/invalid job payload: .*builds\[0\]\.source/);
    expect(existsSync(marker(r))).toBe(false);
  });
});
