/**
 * Progress of a sweep: outcomes from the database, running jobs from Redis.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { poolRunQueues, RESULTS_QUEUE } from '../queue/names.js';
import { entryStates } from '../queue/requeue.js';
import { livePools, noWorkerWarning } from '../../worker/heartbeat.js';

export interface PoolProgress {
  pool: string;
  total: number;
  done: number;
  /** Ended without a result (cancelled apart). */
  failed: number;
  cancelled: number;
  running: number;
  waiting: number;
  /**
   * Runs queued in the database with no job in hand in Redis (no job, or only finished entries the database
   * does not know): nothing will run them until `sweep resume`. Null when Redis was not asked.
   */
  noJob: number | null;
  byStatus: Record<string, number>;
  /** Seconds until done at the rate seen so far; null before two outcomes. */
  etaS: number | null;
  /** Workers serving the pool whose heartbeat is live; null when Redis was not asked. */
  liveWorkers: number | null;
  /** Set while runs wait and no live worker serves the pool. */
  warning: string | null;
}

export interface SweepProgress {
  sweepId: string;
  name: string;
  pools: PoolProgress[];
  finished: boolean;
}

export async function sweepProgress(db: Db, redis: Redis | null, sweepId: string): Promise<SweepProgress> {
  const sweep = await db.sweep.findUnique({ where: { id: sweepId } });
  if (!sweep) throw new UsageError(`sweep ${sweepId}: no such sweep in the database (see \`moefarm results list\`)`);
  const rows = await db.run.groupBy({ by: ['pool', 'status'], where: { sweepId }, _count: { _all: true } });
  const pools = new Map<string, PoolProgress>();
  for (const r of rows) {
    let p = pools.get(r.pool);
    if (!p) {
      p = { pool: r.pool, total: 0, done: 0, failed: 0, cancelled: 0, running: 0, waiting: 0, byStatus: {}, etaS: null, liveWorkers: null, warning: null, noJob: null };
      pools.set(r.pool, p);
    }
    const n = r._count._all;
    p.total += n;
    p.byStatus[r.status] = n;
    if (r.status === 'done') p.done += n;
    else if (r.status === 'cancelled') p.cancelled += n;
    else if (r.status !== 'queued') p.failed += n;
  }
  const live = redis ? await livePools(redis) : null;
  for (const p of pools.values()) {
    if (live) {
      p.liveWorkers = live.get(p.pool) ?? 0;
      if ((p.byStatus['queued'] ?? 0) > 0) p.warning = noWorkerWarning(p.pool, live);
    }
    const queued = p.byStatus['queued'] ?? 0;
    if (redis && queued > 0) {
      for (const { name } of await poolRunQueues(redis, p.pool)) {
        const q = new Queue(name, { connection: redis, prefix: queuePrefix() });
        try {
          const active = await q.getActive(0, 999);
          p.running += active.filter((j) => j.id?.startsWith(`${sweepId}-`)).length;
        } finally {
          await q.close();
        }
      }
    }
    if (redis && queued > 0) {
      p.noJob = await runsWithoutJob(db, redis, sweepId, p.pool);
      if (p.noJob > 0) {
        const lost =
          `${p.noJob} queued run(s) have no job in Redis (Redis lost its state, or this database is not the one the jobs were recorded in): ` +
          `nothing will run them; moefarm sweep resume ${sweepId} enqueues them`;
        p.warning = p.warning ? `${lost}\n${p.warning}` : lost;
      }
    }
    p.waiting = Math.max(0, queued - p.running - (p.noJob ?? 0));
    const finishedRuns = await db.run.findMany({
      where: { sweepId, pool: p.pool, status: { not: 'queued' } },
      select: { finishedAt: true },
      orderBy: { finishedAt: 'asc' },
    });
    const times = finishedRuns.map((r) => r.finishedAt?.getTime()).filter((t): t is number => t !== undefined);
    if (times.length >= 2 && queued > 0) {
      const rate = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000 || 1e-3);
      p.etaS = queued / rate;
    }
  }
  const list = [...pools.values()];
  return { sweepId, name: sweep.name, pools: list, finished: list.every((p) => p.done + p.failed + p.cancelled === p.total) };
}

/** Queued runs checked against Redis per status call (the rest, if any, are not counted). */
const NO_JOB_CHECKED = 20_000;

/** How many of the pool's queued runs have neither a job nor an outcome message in hand (queue/requeue.ts). */
async function runsWithoutJob(db: Db, redis: Redis, sweepId: string, pool: string): Promise<number> {
  const ids = (await db.run.findMany({ where: { sweepId, pool, status: 'queued' }, select: { id: true }, take: NO_JOB_CHECKED })).map((r) => r.id);
  // A run's job is in its GPU count's queue (queue/names.ts): in hand when any of the pool's queues holds it.
  const queues = await poolRunQueues(redis, pool);
  let n = 0;
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    const inHand = new Set<string>();
    for (const { name } of queues) {
      const jobs = await entryStates(redis, name, batch);
      batch.forEach((id, j) => {
        if (jobs[j] === 'pending' || jobs[j] === 'failed') inHand.add(id);
      });
    }
    const outcomes = await entryStates(redis, RESULTS_QUEUE, batch);
    const lost = batch.filter((id, j) => !inHand.has(id) && outcomes[j] !== 'pending');
    // The database again, after Redis: a run that finished meanwhile is not lost.
    if (lost.length) n += await db.run.count({ where: { id: { in: lost }, status: 'queued' } });
  }
  return n;
}

export function renderProgress(s: SweepProgress, width = 30): string {
  const lines = [`sweep ${s.sweepId} (${s.name})`];
  for (const p of s.pools) {
    const ended = p.done + p.failed + p.cancelled;
    const frac = p.total ? ended / p.total : 1;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    const eta = p.etaS === null ? '' : `  eta ${formatSeconds(p.etaS)}`;
    lines.push(
      `  ${p.pool.padEnd(10)} [${bar}] ${String(ended).padStart(String(p.total).length)}/${p.total}  ` +
        `done ${p.done}  running ${p.running}  failed ${p.failed}${p.cancelled ? `  cancelled ${p.cancelled}` : ''}  waiting ${p.waiting}${p.noJob ? `  no job ${p.noJob}` : ''}${eta}`,
    );
    const failures = Object.entries(p.byStatus).filter(([k]) => k !== 'done' && k !== 'queued' && k !== 'cancelled');
    if (failures.length) lines.push(`  ${''.padEnd(10)} failures: ${failures.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (p.warning) for (const w of p.warning.split('\n')) lines.push(`  ${''.padEnd(10)} ${w}`);
  }
  return lines.join('\n');
}

function formatSeconds(s: number): string {
  if (s < 90) return `${Math.ceil(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}
