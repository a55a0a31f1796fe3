/**
 * Progress of a sweep: outcomes from the database, running jobs from Redis.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { poolRunQueues } from '../queue/names.js';
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
      p = { pool: r.pool, total: 0, done: 0, failed: 0, cancelled: 0, running: 0, waiting: 0, byStatus: {}, etaS: null, liveWorkers: null, warning: null };
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
    p.waiting = Math.max(0, queued - p.running);
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
        `done ${p.done}  running ${p.running}  failed ${p.failed}${p.cancelled ? `  cancelled ${p.cancelled}` : ''}  waiting ${p.waiting}${eta}`,
    );
    const failures = Object.entries(p.byStatus).filter(([k]) => k !== 'done' && k !== 'queued' && k !== 'cancelled');
    if (failures.length) lines.push(`  ${''.padEnd(10)} failures: ${failures.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (p.warning) lines.push(`  ${''.padEnd(10)} ${p.warning}`);
  }
  return lines.join('\n');
}

function formatSeconds(s: number): string {
  if (s < 90) return `${Math.ceil(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}
