/**
 * Faults on the worker side, with real worker processes (`moefarm worker`),
 * a real collector process (`moefarm serve`), a test-owned redis-server and
 * the real CPU binary:
 *  1. a worker SIGKILLed mid-run: the job is taken over by another worker
 *     (BullMQ's stalled-job check) and exactly one result is stored;
 *  2. a hung native run: killed at the job's timeout, recorded as `timeout`,
 *     and the worker goes on with the next job;
 *  6. a native binary that misbehaves (garbage, partial JSON, NaN timings,
 *     exit 3, a failed correctness check): the run fails with a specific
 *     reason and its stdout/stderr are kept, capped.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TAIL_BYTES } from '../../src/db/record.js';
import { RESULTS_QUEUE, runQueueName } from '../../src/queue/names.js';
import { ROOT, waitFor } from '../helpers/services.js';
import { benchChildren, rig, teardown, warmBuild } from './common.js';
import { collectorCounts, enqueuePlan, outcomes, report, settled, startCollector, startWorker } from './procs.js';
import { range, tinyPlan } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

describe('a worker killed in the middle of a run', () => {
  it('is replaced: another worker takes the stalled job over and exactly one result is stored', async () => {
    const r = await rig('kill', { lockMs: 2000 });
    const collector = await startCollector(r, r.dbUrl);
    const a = await startWorker(r, r.pool, 'worker-A');
    const plan = tinyPlan(r.pool, { tokens: range(3) });
    const victim = plan.runs[0]!;
    // The first run sleeps 3 s inside the binary (TEST ONLY hook): long enough to kill its worker mid-run.
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j, _run, i) => (i === 0 ? { ...j, test: { sleepMs: 3000 } } : j));

    const [orphan] = await waitFor('worker A to start the native run', async () => {
      const kids = await benchChildren(a.pid);
      return kids.length > 0 ? kids : null;
    });
    const killedAt = Date.now();
    await a.kill();
    expect(a.exitCode).toBe(-1); // killed by a signal
    const b = await startWorker(r, r.pool, 'worker-B');
    await waitFor('every run to have an outcome', () => settled(r.db, plan.sweepId, 3), 45_000);
    const takeoverMs = Date.now() - killedAt;

    const runs = await outcomes(r.db, plan.sweepId);
    expect(runs.map((x) => [x.status, x.results])).toEqual([
      ['done', 1],
      ['done', 1],
      ['done', 1],
    ]);
    expect(runs.find((x) => x.id === victim.id)!.workerId).toBe('worker-B');
    expect(await r.db.result.count({ where: { run: { sweepId: plan.sweepId } } })).toBe(3);
    const results = new Queue(RESULTS_QUEUE, { connection: r.client, prefix: r.prefix });
    // The collector acknowledges a result after its commit: wait for the acknowledgements, then check that none is left over.
    await waitFor('the collector to acknowledge every result', async () => ((await results.getCompletedCount()) === 3 ? true : null));
    expect(await results.getJobCounts('completed', 'waiting', 'active', 'delayed', 'failed')).toEqual({ completed: 3, waiting: 0, active: 0, delayed: 0, failed: 0 });
    await results.close();
    const runQueue = new Queue(runQueueName(r.pool), { connection: r.client, prefix: r.prefix });
    const victimJob = await runQueue.getJob(victim.id);
    expect(victimJob?.stalledCounter).toBe(1); // taken back once by the stalled-job check, not retried as a failure
    expect(victimJob?.attemptsMade).toBe(1);
    await runQueue.close();

    await collector.stop();
    expect(collectorCounts(collector)).toEqual({ recorded: 3, duplicates: 0 });
    await b.stop();
    report('SIGKILL worker mid-run', { runs: 3, results: 3, duplicates: 0, takeoverMs, orphanBenchPid: orphan ?? 'none' });
  });
});

describe('a native run that hangs', () => {
  it('is killed at the job timeout (SIGTERM, then SIGKILL), recorded as timeout, and the worker goes on', async () => {
    const r = await rig('hang');
    const collector = await startCollector(r, r.dbUrl);
    const w = await startWorker(r, r.pool, 'worker-T');
    const plan = tinyPlan(r.pool, { tokens: range(2) });
    const [hung, next] = plan.runs as [(typeof plan.runs)[0], (typeof plan.runs)[0]];
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j, _run, i) => (i === 0 ? { ...j, timeoutS: 1, test: { sleepMs: 120_000 } } : j));
    await waitFor('both runs to end', () => settled(r.db, plan.sweepId, 2), 30_000);

    const timedOut = await r.db.run.findUniqueOrThrow({ where: { id: hung.id } });
    expect(timedOut.status).toBe('timeout');
    expect(timedOut.reason).toMatch(/killed after the job's timeout of 1 s/);
    expect(timedOut.wallMs).toBeGreaterThanOrEqual(1000);
    // Ended by the timeout (SIGTERM at 1 s, SIGKILL 5 s later at worst), not by the end of the 120 s sleep. The bound is
    // loose on purpose: how soon after 1 s it ends depends on the load of the machine running the tests.
    expect(timedOut.wallMs).toBeLessThan(30_000);
    const after = await r.db.run.findUniqueOrThrow({ where: { id: next.id }, include: { results: true } });
    expect(after.status).toBe('done');
    expect(after.results).toHaveLength(1);
    expect(w.running).toBe(true);
    expect(await benchChildren(w.pid)).toEqual([]); // the hung binary is gone, not orphaned
    await collector.stop();
    expect(collectorCounts(collector)).toEqual({ recorded: 2, duplicates: 0 });
    report('hung native run', { timeoutS: 1, killedAfterMs: timedOut.wallMs, nextJob: after.status });
  });
});

describe('a native binary that misbehaves', () => {
  it('fails each run with a specific reason and keeps its output, capped', async () => {
    const r = await rig('badout');
    const collector = await startCollector(r, r.dbUrl);
    await startWorker(r, r.pool, 'worker-O');
    // Token counts only make the runs distinct; the hook decides how each misbehaves. The NaN run has
    // 3000 iterations so that its stdout (every sample) is larger than the kept tail.
    const plan = tinyPlan(r.pool, { tokens: range(5) });
    const modes = ['garbage', 'partial', 'nan', 'exit3', undefined] as const;
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j, _run, i) => {
      const output = modes[i];
      if (output === 'nan') return { ...j, test: { output }, points: j.points.map((p) => ({ ...p, point: { ...p.point, iters: 3000 } })) };
      return output ? { ...j, test: { output } } : j;
    });
    await waitFor('every run to end', () => settled(r.db, plan.sweepId, 5), 30_000);
    const byIndex = await Promise.all(plan.runs.map((run) => r.db.run.findUniqueOrThrow({ where: { id: run.id }, include: { results: true } })));
    const [garbage, partial, nan, exit3, good] = byIndex as [(typeof byIndex)[0], (typeof byIndex)[0], (typeof byIndex)[0], (typeof byIndex)[0], (typeof byIndex)[0]];

    expect(garbage).toMatchObject({ status: 'bad-output' });
    expect(garbage.reason).toMatch(/stdout is not one JSON document/);
    expect(garbage.stdoutTail).toContain('this is not JSON');

    expect(partial).toMatchObject({ status: 'bad-output' });
    expect(partial.reason).toMatch(/stdout is not one JSON document/);
    expect(partial.stdoutTail).toMatch(/^\{"schema":"moefarm.bench\/1"/);

    expect(nan).toMatchObject({ status: 'bad-output' });
    expect(nan.reason).toMatch(/results\[0\]\.samples_us\[0\]/);
    expect(nan.stdoutTail!.length).toBeLessThanOrEqual(TAIL_BYTES + 1);
    expect(nan.stdoutTail!.startsWith('…')).toBe(true); // capped: the tail, marked as cut

    expect(exit3).toMatchObject({ status: 'crashed' });
    expect(exit3.reason).toMatch(/exit code 3/);
    expect(exit3.stderrTail).toMatch(/simulated runtime error/);

    expect(good).toMatchObject({ status: 'done' });
    for (const bad of [garbage, partial, nan, exit3]) expect(bad.results).toEqual([]);
    expect(good.results).toHaveLength(1);
    await collector.stop();
    report('misbehaving binary', {
      garbage: garbage.status,
      partial: partial.status,
      nan: nan.status,
      exit3: exit3.status,
      nanStdoutKept: nan.stdoutTail!.length,
    });
  });

  it('fails a run whose correctness check fails as check-failed, output kept', async () => {
    // A real binary with a real defect: a copy of csrc/ whose check can never pass (tolerance below zero).
    const r = await rig('check');
    const csrc = join(r.dir, 'csrc');
    cpSync(join(ROOT, 'csrc'), csrc, { recursive: true, filter: (src) => !/[\\/]csrc[\\/]build([\\/]|$)/.test(src) });
    const check = join(csrc, 'src', 'check.cpp');
    const text = readFileSync(check, 'utf8');
    expect(text).toContain('worst <= cr.tol');
    writeFileSync(check, text.replace('worst <= cr.tol', 'worst < -1.0'));
    const collector = await startCollector(r, r.dbUrl);
    // The defective copy is the submitted source; the worker's own checkout plays no part.
    await startWorker(r, r.pool, 'worker-C');
    const plan = tinyPlan(r.pool, { sourceDir: csrc });
    await enqueuePlan(r.db, r.client, r.prefix, plan);
    await waitFor('the run to end', () => settled(r.db, plan.sweepId, 1), 90_000);
    const run = await r.db.run.findFirstOrThrow({ where: { sweepId: plan.sweepId }, include: { results: true } });
    expect(run.status).toBe('check-failed');
    expect(run.reason).toMatch(/correctness check failed: reference rel_err=/);
    expect(JSON.parse(run.stdoutTail!)).toMatchObject({ check: { pass: false } });
    expect(run.results).toEqual([]);
    await collector.stop();
    report('failed correctness check', { status: run.status });
  });
});
