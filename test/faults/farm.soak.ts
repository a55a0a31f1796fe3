/**
 * Soak: a sweep of SOAK_POINTS tiny CPU runs (default 2000: 100 token counts x
 * 2 variants x 10 repetitions, one iteration each, no warm-up) submitted with
 * the real CLI, run by SOAK_WORKERS worker processes (default 4) and one
 * collector process on a test-owned redis-server (AOF, fsync always) into
 * SQLite, while faults are injected at random every ~SOAK_FAULT_EVERY_MS:
 * a worker SIGKILLed (and replaced), the collector SIGKILLed (and restarted),
 * or Redis SIGKILLed and restarted from its AOF. It ends when every run has an
 * outcome and checks there is exactly one per run, and one result per done run.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { afterAll, expect, it } from 'vitest';
import { RESULTS_QUEUE, runQueueName } from '../../src/queue/names.js';
import { rig, teardown, warmBuild } from './common.js';
import { report, runCli, startCollector, startWorker, type Proc } from './procs.js';
import { range, tinySweepText } from './sweeps.js';

const POINTS = Number(process.env['SOAK_POINTS'] ?? 2000);
const WORKERS = Number(process.env['SOAK_WORKERS'] ?? 4);
const FAULT_EVERY_MS = Number(process.env['SOAK_FAULT_EVERY_MS'] ?? 4000);

afterAll(teardown);

it(`${POINTS} runs over ${WORKERS} workers with random faults: exactly one outcome each`, async () => {
  await warmBuild();
  const r = await rig('soak', { lockMs: 2000, fsync: 'always' });
  const repeat = Math.max(1, Math.round(POINTS / 200));
  const tokens = range(Math.round(POINTS / 2 / repeat));
  const file = join(r.dir, 'soak.yaml');
  writeFileSync(file, tinySweepText(r.pool, { name: 'soak', variants: ['reference', 'fused'], tokens, repeat }));

  let collector = await startCollector(r, r.dbUrl);
  const workers: Proc[] = [];
  for (let i = 0; i < WORKERS; i++) workers.push(await startWorker(r, r.pool, `soak-${i}`));
  const t0 = Date.now();
  const sub = await runCli(r, ['sweep', 'submit', file, '--json'], { DATABASE_URL: r.dbUrl });
  expect(sub.exitCode, String(sub.stderr)).toBe(0);
  const { sweepId, jobs } = JSON.parse(String(sub.stdout)) as { sweepId: string; jobs: number };
  expect(jobs).toBe(POINTS);

  const faults = { workerKills: 0, collectorKills: 0, redisRestarts: 0 };
  let spawned = WORKERS;
  const open = () => r.db.run.count({ where: { sweepId, status: 'queued' } });
  for (;;) {
    const left = await open().catch(() => -1);
    if (left === 0) break;
    if (Date.now() - t0 > 25 * 60_000) throw new Error(`soak did not finish: ${left} runs open`);
    await sleep(FAULT_EVERY_MS / 2 + Math.random() * FAULT_EVERY_MS);
    if ((await open().catch(() => -1)) === 0) break;
    const dice = Math.random();
    if (dice < 0.6) {
      const i = Math.floor(Math.random() * workers.length);
      await workers[i]!.kill();
      workers[i] = await startWorker(r, r.pool, `soak-${spawned++}`);
      faults.workerKills++;
    } else if (dice < 0.85) {
      await collector.kill();
      collector = await startCollector(r, r.dbUrl);
      faults.collectorKills++;
    } else if (faults.redisRestarts < 3) {
      await r.redis.crashAndRestart(500 + Math.random() * 1500);
      faults.redisRestarts++;
    }
  }
  const ms = Date.now() - t0;

  const runs = await r.db.run.findMany({ where: { sweepId }, select: { id: true, status: true, reason: true, _count: { select: { results: true } } } });
  const byStatus: Record<string, number> = {};
  for (const x of runs) byStatus[x.status] = (byStatus[x.status] ?? 0) + 1;
  const results = await r.db.result.count({ where: { run: { sweepId } } });
  const q = new Queue(RESULTS_QUEUE, { connection: r.client, prefix: r.prefix });
  await collector.stop();
  const resultCounts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed');
  await q.close();
  const rq = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
  const runCounts = await rq.getJobCounts('waiting', 'active', 'delayed');
  await rq.close();

  report('soak', { points: jobs, workers: WORKERS, ...faults, seconds: ms / 1000, results, ...Object.fromEntries(Object.entries(byStatus).map(([k, v]) => [`status.${k}`, v])) });
  const notDone = runs.filter((x) => x.status !== 'done').slice(0, 5).map((x) => `${x.id}: ${x.status}: ${x.reason}`);
  if (notDone.length) process.stdout.write(`[soak] not done (first 5):\n${notDone.join('\n')}\n`);

  expect(runs).toHaveLength(POINTS); // no run lost, none invented
  expect(byStatus['queued'] ?? 0).toBe(0); // every run has an outcome
  expect(runs.filter((x) => x.status === 'done' && x._count.results !== 1)).toEqual([]); // one result per done run
  expect(runs.filter((x) => x.status !== 'done' && x._count.results !== 0)).toEqual([]);
  expect(results).toBe(byStatus['done'] ?? 0);
  expect(resultCounts).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0 }); // nothing left behind in Redis
  expect(runCounts).toEqual({ waiting: 0, active: 0, delayed: 0 });
  expect(faults.workerKills + faults.collectorKills + faults.redisRestarts).toBeGreaterThan(0);
});
