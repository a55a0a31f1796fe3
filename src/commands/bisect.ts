/**
 * `moefarm bisect`: the first commit that made a sweep slower. By default
 * against the running farm (REDIS_URL, DATABASE_URL): each step's sweep is
 * submitted there and waited for, as `sweep submit --until-confident` does,
 * so workers and a collector (`moefarm serve`) must be running. With
 * `--local`, a collector and a worker run in this process, as `moefarm demo`
 * does (a private redis-server when none answers at REDIS_URL): one machine,
 * nothing else to start. Either way the state is in the database and the
 * same command resumes an interrupted bisect.
 */
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { csrcDir, lockDurationMs, redisUrl } from '../config.js';
import type { Db } from '../db/client.js';
import { ExitError, UsageError } from '../errors.js';
import { redisOrPrivate } from '../services/redis-server.js';
import { loadSweepFile } from '../sweep/load.js';
import { redactUrl } from '../util/redact.js';
import { renderTable, type Cell } from '../util/table.js';
import { prepareBisect, runBisect, type BisectOutcome } from '../bisect/run.js';
import { slowdownPct } from '../results/gate.js';
import { formatComparison } from './results-compare.js';
import { withDb, withRedis } from './context.js';
import { withLocalFarm } from './local-farm.js';

export interface BisectCommandOptions {
  good: string;
  bad: string;
  sweep: string;
  point?: string;
  source?: string;
  threshold: number;
  unsure: 'good' | 'skip';
  budget?: number;
  local?: boolean;
  restart?: boolean;
  json?: boolean;
}

export async function bisect(opts: BisectCommandOptions): Promise<void> {
  const sweep = await loadSweepFile(opts.sweep);
  if (sweep.source === 'worker') throw new UsageError(`${opts.sweep}: source: worker: bisect builds each commit's own source, so the source must travel with the sweep (leave source: out)`);
  const log = (line: string) => process.stderr.write(line + '\n');
  if (sweep.builds) log(`bisect: ${opts.sweep}: its builds: (${Object.keys(sweep.builds).join(', ')}) and baseline are replaced by good and each commit, interleaved`);
  const request = {
    goodRef: opts.good,
    badRef: opts.bad,
    sweep,
    sweepFile: opts.sweep,
    sourceDir: resolve(opts.source ?? csrcDir()),
    point: opts.point ?? null,
    thresholdPct: opts.threshold,
    unsure: opts.unsure,
    budget: opts.budget ?? null,
    restart: opts.restart ?? false,
  };
  // Refs, ancestry, both sources and every point are checked before Redis or the database is touched.
  const prepared = prepareBisect(request);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  let outcome: BisectOutcome;
  try {
    outcome = opts.local
      ? await local(sweep.pool, sweep.matrix.backend.includes('cuda') ? 'cuda' : 'cpu', log, (db, redis) => runBisect({ db, redis, log, signal: ac.signal }, request, prepared))
      : await withRedis((redis) =>
          withDb(async (db) => {
            const { livePools, noWorkerWarning } = await import('../../worker/heartbeat.js');
            const warning = noWorkerWarning(sweep.pool, await livePools(redis));
            if (warning) log(`${warning} (or run bisect with --local: a worker and a collector in this process)`);
            log('bisect: against the running farm: each step waits for its outcomes (needs a collector, moefarm serve, and a worker on pool ' + sweep.pool + ')');
            return runBisect({ db, redis, log, signal: ac.signal }, request, prepared);
          }),
        );
  } catch (err) {
    if (ac.signal.aborted) throw new ExitError(`bisect: interrupted; the steps recorded so far are kept: run the same command again to resume`, 1);
    throw err;
  } finally {
    process.off('SIGINT', stop);
  }
  if (opts.json) process.stdout.write(JSON.stringify({ ...outcome, evidence: outcome.evidence?.rows ?? null }) + '\n');
  else process.stdout.write(formatBisect(outcome) + '\n');
  if (outcome.status === 'no-regression' || outcome.status === 'failed') throw new ExitError(outcome.message, 1);
}

/** A collector and a worker in this process on the same database and Redis (a private one when none answers). */
async function local<T>(pool: string, backend: 'cpu' | 'cuda', log: (l: string) => void, fn: (db: Db, redis: Redis) => Promise<T>): Promise<T> {
  const queue = await redisOrPrivate(redisUrl());
  if (queue.private) log(`bisect --local: no Redis at ${redactUrl(redisUrl())}: started a private redis-server at ${queue.url} (it stops when bisect ends)`);
  try {
    // As moefarm worker does: a job held by a bisect killed mid-run goes back to the queue after this long.
    const lock = lockDurationMs();
    return await withLocalFarm({ url: queue.url, pool, backend, ...(lock !== undefined ? { lockDurationMs: lock } : {}) }, (db, redis) => {
      log(`bisect --local: a worker (pool ${pool}, ${backend}) and a collector in this process`);
      return fn(db, redis);
    });
  } finally {
    await queue.private?.stop();
  }
}

export function formatBisect(o: BisectOutcome): string {
  const rows = o.steps.map((s): Cell[] => [
    s.position === o.commits.length - 1 && s.seq === 1 ? 'bad' : s.seq - 1,
    s.commit.slice(0, 10),
    s.subject.length > 40 ? `${s.subject.slice(0, 39)}…` : s.subject,
    `${s.position + 1}/${o.commits.length}`,
    s.status,
    s.verdict === null ? (s.measured ? '' : 'not measured') : s.verdict,
    s.speedup === null ? null : Number(s.speedup.toFixed(3)),
    s.ciLo === null || s.ciHi === null ? '' : `[${s.ciLo.toFixed(3)}, ${s.ciHi.toFixed(3)}]`,
    s.speedup === null ? null : Number((slowdownPct(s.speedup) ?? 0).toFixed(1)),
    s.sweepId ?? '',
  ]);
  const lines = [
    `bisect ${o.bisectId}: good ${o.good.commit.slice(0, 10)} "${o.good.subject}" .. bad ${o.bad.commit.slice(0, 10)} "${o.bad.subject}": ${o.commits.length} commit(s); ` +
      `${o.bisectSteps} step(s) after the check of bad${o.resumed ? ` (resumed with ${o.resumed} recorded)` : ''}`,
    renderTable(['step', 'commit', 'subject', 'position', 'result', 'verdict', 'speedup', 'ci95', 'slower_%', 'sweep'], rows),
    ...o.steps.map((s) => `  ${s.commit.slice(0, 10)} ${s.status}: ${s.reason}`),
    'speedup = good median / commit median (below 1: the commit is slower); each step a paired sweep of the commit against good, repeated while UNSURE',
    '',
    o.message,
  ];
  if (o.evidence) lines.push('', `evidence: the first slower commit against good (sweep ${o.evidence.sweepId}):`, formatComparison(o.evidence));
  return lines.join('\n');
}
