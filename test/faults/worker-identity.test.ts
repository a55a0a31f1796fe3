/**
 * Worker identities and orphan clean-up, with real `moefarm worker`
 * processes on one host, a real collector, a test-owned redis-server and the
 * real CPU binary.
 *
 * The faults this reproduces: two workers on one host and pool got the same
 * name (`host/pool/cpu`), so `moefarm workers` showed one row with the jobs
 * of both; and starting a third killed a LIVE run of another as "left behind
 * by a worker that died" (recorded `crashed`), because the clean-up went by
 * the name, not by whether its owner was dead.
 */
import { hostname } from 'node:os';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/services.js';
import { benchChildren, rig, teardown, warmBuild } from './common.js';
import { enqueuePlan, outcomes, pidAlive, report, runCli, settled, startCollector, startWorker, type Proc } from './procs.js';
import { range, tinyPlan } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

async function runningBench(workers: Proc[]): Promise<Map<Proc, number>> {
  const out = new Map<Proc, number>();
  for (const w of workers) {
    const [pid] = await benchChildren(w.pid);
    if (pid !== undefined) out.set(w, pid);
  }
  return out;
}

describe('three workers on one host and pool, with no names given', () => {
  it('get one id each, one row each in `moefarm workers`, and none kills the run of another', async () => {
    const r = await rig('ids');
    const collector = await startCollector(r, r.dbUrl);
    const first = [await startWorker(r, r.pool, null), await startWorker(r, r.pool, null)];
    // Six runs of 2 s each: the third worker starts while the first two are in the middle of theirs.
    const plan = tinyPlan(r.pool, { tokens: range(6) });
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j) => ({ ...j, test: { sleepMs: 2000 } }));
    const before = await waitFor('both workers to be running the binary', async () => {
      const m = await runningBench(first);
      return m.size === 2 ? m : null;
    });
    const third = await startWorker(r, r.pool, null);
    const workers = [...first, third];
    await waitFor('every run to end', () => settled(r.db, plan.sweepId, 6), 60_000);

    const runs = await outcomes(r.db, plan.sweepId);
    expect(runs.map((x) => `${x.status} ${x.reason ?? ''}`.trim())).toEqual(Array(6).fill('done'));
    for (const pid of before.values()) expect(pidAlive(pid)).toBe(false); // they finished; none was killed (all done)
    // None of this test's runs was killed. (Each rig has a state folder of its own, so no other test file's dead
    // worker is seen here; the log is still searched for this test's groups only.)
    const ours = new RegExp(`killed run \\(process group (${[...before.values()].join('|')})\\)`);
    for (const w of workers) expect(w.output()).not.toMatch(ours);

    const base = `${hostname()}/${r.pool}/cpu`;
    const ids = workers.map((w) => /worker: (\S+): serving pool/.exec(w.output())?.[1]);
    expect(new Set(ids).size).toBe(3);
    expect(ids.sort()).toEqual([base, `${base}#2`, `${base}#3`].sort());
    const listed = await runCli(r, ['workers', '--json']);
    expect(listed.exitCode, String(listed.stderr)).toBe(0);
    const rows = JSON.parse(String(listed.stdout)) as Array<{ id: string; status: string }>;
    expect(rows.map((x) => x.id).sort()).toEqual([...ids].sort());
    // Each run names the one worker that ran it, and that is one of the three.
    for (const run of runs) expect(ids).toContain(run.workerId);
    await collector.stop();
    report('three workers, one host and pool', { ids: ids.length, runs: 6, done: 6, killedLive: 0 });
  });
});

describe('a worker killed outright', () => {
  it('leaves a run that the next worker start kills, because its owner is proven dead; a live worker\'s run is untouched', async () => {
    const r = await rig('reap');
    const collector = await startCollector(r, r.dbUrl);
    const a = await startWorker(r, r.pool, 'worker-A');
    const b = await startWorker(r, r.pool, 'worker-B');
    // Two long runs (one per worker). Each sleeps long enough that the orphan is surely still running when worker
    // C has started, also on a loaded machine (it slept 6 s, and on a busy CI machine worker C's log once lacked
    // the kill: either the run had ended on its own first or the line was not read yet; both are ruled out now);
    // the taken-over job, run again, ends well inside its timeout.
    const plan = tinyPlan(r.pool, { tokens: range(2) });
    await enqueuePlan(r.db, r.client, r.prefix, plan, (j) => ({ ...j, timeoutS: 40, test: { sleepMs: 15_000 } }));
    const running = await waitFor('both workers to be running the binary', async () => {
      const m = await runningBench([a, b]);
      return m.size === 2 ? m : null;
    });
    const orphan = running.get(a)!;
    const live = running.get(b)!;
    await a.kill();
    expect(pidAlive(orphan)).toBe(true); // its own process group: SIGKILL of the worker does not reach it

    const c = await startWorker(r, r.pool, 'worker-C');
    await waitFor('the dead worker\'s run to be killed', async () => !pidAlive(orphan), 10_000, 50);
    // The kill and its log line are two events: wait for the line rather than reading the output at once.
    const reaped = new RegExp(`killed run \\(process group ${orphan}\\) left behind by worker worker-A \\(pid ${a.pid}\\), which died`);
    await waitFor('worker C to log the kill', async () => reaped.test(c.output()), 10_000, 50);
    expect(pidAlive(live)).toBe(true); // worker B's run goes on

    await waitFor('every run to end', () => settled(r.db, plan.sweepId, 2), 60_000);
    const runs = await outcomes(r.db, plan.sweepId);
    const byWorker = new Map(runs.map((x) => [x.workerId, x.status]));
    expect(byWorker.get('worker-B')).toBe('done'); // not `crashed`: nobody killed it
    expect(runs.every((x) => x.status === 'done')).toBe(true);
    // Worker B killed neither run of this test: worker C took the orphan, and B's own run was live.
    expect(b.output()).not.toMatch(new RegExp(`killed run \\(process group (${orphan}|${live})\\)`));
    await collector.stop();
    report('dead worker\'s orphan', { orphanKilled: true, liveRunDone: true });
  });
});
