/**
 * The submit loop of `sweep submit FILE --until-confident [--budget N]`
 * (adaptive repetition): wait for the sweep's outcomes, compare, and for exactly the comparisons
 * that came out UNSURE enqueue more repetitions of the runs they rest on
 * (the baseline's and the variant's job groups in that point), then wait and
 * compare again, until every comparison is decided or the budget of extra
 * runs is spent.
 *
 * Extra repetitions are ordinary runs with rep >= sweep.repeat: a Run row
 * with status 'queued' (as db/plan.ts writes them) and a job built by
 * queue/submit.ts toJob, with the run id runId(sweepId, groupHash, rep) and
 * seed sweep.seed + rep. So progress, the collector, compare and reports see
 * them like any other run, and a second `--until-confident` on the same
 * sweep carries on from the highest rep there is.
 *
 * Each round a group gets ceil(runs so far / 2) more runs (at least 1):
 * the CI narrows roughly with sqrt(runs), so growing by half each round
 * reaches a decision in few rounds without overshooting much.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { RUN_JOB_OPTIONS } from './options.js';
import { clearCancel } from './cancel.js';
import { notePoolGpus, runQueueName } from './names.js';
import { runGpus, toJob } from './job.js';
import { planBundles } from './submit.js';
import { storeBundles } from '../source/store.js';
import { RunParamsSchema } from '../schema/job.js';
import { runId, type Plan, type PlannedRun } from '../sweep/expand.js';
import { canonicalJson } from '../util/hash.js';
import { compareSweep, type CompareOptions, type Comparison } from '../results/compare.js';
import { loadSweepResults } from '../results/load.js';

export interface AdaptiveOptions {
  /** Most extra runs (jobs) to add over all rounds. */
  budget: number;
  compare?: CompareOptions;
  /** Poll period while waiting for outcomes, ms (default 1000). */
  pollMs?: number;
  /** Say what is being waited for after this long without a new outcome, ms (default 60000). */
  stallWarnMs?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface AdaptiveRound {
  round: number;
  unsure: number;
  addedRuns: number;
}

export interface AdaptiveReport {
  sweepId: string;
  budget: number;
  extraRuns: number;
  rounds: AdaptiveRound[];
  /** True when no comparison is UNSURE any more. */
  decided: boolean;
  stoppedBecause: 'decided' | 'budget' | 'nothing-to-repeat';
  undecided: Array<{ point: string; env: string; variant: string; reason: string }>;
  comparison: Comparison;
}

/** Resolves when no run of the sweep is waiting for an outcome. */
export async function waitForOutcomes(db: Db, sweepId: string, opts: Pick<AdaptiveOptions, 'pollMs' | 'stallWarnMs' | 'log' | 'signal'> & { pool: string }): Promise<void> {
  const poll = opts.pollMs ?? 1000;
  const warnAfter = opts.stallWarnMs ?? 60_000;
  let last = -1;
  let lastChange = Date.now();
  let warned = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    const queued = await db.run.count({ where: { sweepId, status: 'queued' } });
    if (queued === 0) return;
    if (queued !== last) {
      last = queued;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > warnAfter * (warned + 1)) {
      warned++;
      opts.log?.(
        `until-confident: ${queued} run(s) still waiting after ${Math.round((Date.now() - lastChange) / 1000)} s without a new outcome; ` +
          `is a collector (moefarm serve) running on this database, and a worker on pool ${opts.pool}?`,
      );
    }
    await sleep(poll, undefined, opts.signal ? { signal: opts.signal } : {});
  }
}

export async function untilConfident(db: Db, redis: Redis, plan: Plan, opts: AdaptiveOptions): Promise<AdaptiveReport> {
  const log = opts.log ?? (() => {});
  const sweepId = plan.sweepId;
  const rounds: AdaptiveRound[] = [];
  let extra = 0;
  for (let round = 1; ; round++) {
    await waitForOutcomes(db, sweepId, { ...opts, pool: plan.sweep.pool });
    const cmp = compareSweep(await loadSweepResults(db, sweepId), null, opts.compare ?? {});
    const unsure = cmp.rows.filter((r) => r.verdict === 'UNSURE');
    const finish = (stoppedBecause: AdaptiveReport['stoppedBecause']): AdaptiveReport => ({
      sweepId,
      budget: opts.budget,
      extraRuns: extra,
      rounds,
      decided: unsure.length === 0,
      stoppedBecause,
      undecided: unsure.map((r) => ({ point: r.point, env: r.env, variant: r.variant, reason: r.reason })),
      comparison: cmp,
    });
    if (unsure.length === 0) {
      log(`until-confident: every comparison decided after ${extra} extra run(s)`);
      return finish('decided');
    }
    const left = opts.budget - extra;
    if (left <= 0) {
      log(`until-confident: budget of ${opts.budget} extra run(s) spent; ${unsure.length} comparison(s) still UNSURE`);
      return finish('budget');
    }
    const groups = [...new Set(unsure.flatMap((r) => r.groupHashes))].sort();
    const runs = await db.run.findMany({ where: { sweepId, groupHash: { in: groups } }, select: { groupHash: true, rep: true, params: true, status: true } });
    const byGroup = new Map<string, { maxRep: number; count: number; params: string }>();
    for (const r of runs) {
      const g = byGroup.get(r.groupHash) ?? { maxRep: -1, count: 0, params: r.params };
      g.maxRep = Math.max(g.maxRep, r.rep);
      if (r.status === 'done') g.count++;
      byGroup.set(r.groupHash, g);
    }
    // Wanted per group, then handed out one run at a time across groups so a short budget is shared fairly.
    const want = groups.filter((g) => byGroup.has(g)).map((g) => ({ g, n: Math.max(1, Math.ceil(byGroup.get(g)!.count / 2)), given: 0 }));
    let budgetLeft = left;
    for (let more = true; more && budgetLeft > 0; ) {
      more = false;
      for (const w of want) {
        if (w.given < w.n && budgetLeft > 0) {
          w.given++;
          budgetLeft--;
          more = true;
        }
      }
    }
    const planned: PlannedRun[] = [];
    for (const w of want) {
      const g = byGroup.get(w.g)!;
      const points = RunParamsSchema.parse(JSON.parse(g.params));
      for (let i = 1; i <= w.given; i++) {
        const rep = g.maxRep + i;
        planned.push({ id: runId(sweepId, w.g, rep), groupHash: w.g, rep, seed: plan.sweep.seed + rep, points });
      }
    }
    if (planned.length === 0) {
      log(`until-confident: ${unsure.length} comparison(s) UNSURE but no run group to repeat`);
      return finish('nothing-to-repeat');
    }
    await enqueueExtraRuns(db, redis, plan, planned);
    extra += planned.length;
    rounds.push({ round, unsure: unsure.length, addedRuns: planned.length });
    log(
      `until-confident: round ${round}: ${unsure.length} comparison(s) UNSURE (${unsure.map((r) => `${r.point} ${r.variant}`).join('; ')}); ` +
        `enqueued ${planned.length} more run(s) (${extra}/${opts.budget} of the budget)`,
    );
  }
}

/** Run rows first (status queued, as db/plan.ts), then the jobs: a job never exists without its row. */
export async function enqueueExtraRuns(db: Db, redis: Redis, plan: Plan, runs: PlannedRun[]): Promise<void> {
  const existing = new Set((await db.run.findMany({ where: { id: { in: runs.map((r) => r.id) } }, select: { id: true } })).map((r) => r.id));
  const fresh = runs.filter((r) => !existing.has(r.id));
  if (fresh.length) {
    await db.run.createMany({
      data: fresh.map((r) => ({
        id: r.id,
        sweepId: plan.sweepId,
        groupHash: r.groupHash,
        rep: r.rep,
        pool: plan.sweep.pool,
        params: canonicalJson(r.points),
        status: 'queued',
      })),
    });
  }
  // The sweep may have finished (and released its bundles) before these runs were added: pin them again.
  await storeBundles(redis, plan.sweepId, planBundles(plan));
  // New work for the sweep: a cancel of it before must not end these runs at once.
  await clearCancel(redis, plan.sweepId);
  // Each run to its GPU count's queue (queue/names.ts).
  await notePoolGpus(redis, plan.sweep.pool, fresh.map(runGpus));
  const now = Date.now();
  for (const gpus of new Set(fresh.map(runGpus))) {
    const queue = new Queue(runQueueName(plan.sweep.pool, gpus), { connection: redis, prefix: queuePrefix() });
    try {
      const mine = fresh.filter((r) => runGpus(r) === gpus);
      await queue.addBulk(mine.map((r) => ({ name: 'run', data: toJob(plan, r, now), opts: { ...RUN_JOB_OPTIONS, jobId: r.id } })));
    } finally {
      await queue.close();
    }
  }
}
