/** A whole farm in the test process: a real worker and a real collector on real Redis and a real database. */
import { Redis } from 'ioredis';
import { Collector } from '../../src/collector/collector.js';
import { csrcDir } from '../../src/config.js';
import { openDb, type Db } from '../../src/db/client.js';
import { silentLog } from '../../src/util/log.js';
import { FarmWorker } from '../../worker/worker.js';
import { TEST_CACHE, TEST_REDIS_URL } from './env.js';
import { freshPostgres, scratch, sqliteUrl } from './services.js';

export interface Farm {
  db: Db;
  redis: Redis;
  worker: FarmWorker;
  collector: Collector;
  close: () => Promise<void>;
}

export interface FarmOptions {
  dbUrl: string;
  pool: string;
  csrc?: string;
  cache?: string;
  testHooks?: boolean;
  lockDurationMs?: number;
  bundleGraceS?: number;
}

export async function startFarm(opts: FarmOptions): Promise<Farm> {
  const db = await openDb({ url: opts.dbUrl });
  const conns = [0, 1, 2].map(() => new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null }));
  const [redis, wc, cc] = conns as [Redis, Redis, Redis];
  const collector = new Collector({ db, connection: cc, reconcileEveryMs: 500, log: silentLog, ...(opts.bundleGraceS ? { bundleGraceS: opts.bundleGraceS } : {}) });
  const worker = new FarmWorker({
    connection: wc,
    pool: opts.pool,
    backend: 'cpu',
    gpu: null,
    arch: 'sm_90a',
    csrc: opts.csrc ?? csrcDir(),
    cache: opts.cache ?? TEST_CACHE,
    testHooks: opts.testHooks ?? false,
    ...(opts.lockDurationMs ? { lockDurationMs: opts.lockDurationMs } : {}),
    log: silentLog,
  });
  await worker.start();
  return {
    db,
    redis,
    worker,
    collector,
    close: async () => {
      await worker.close();
      await collector.close();
      for (const c of conns) c.disconnect();
      await db.$disconnect();
    },
  };
}

/**
 * A farm of its own for one test: a fresh key prefix, a temporary folder, a database of the kind asked for
 * (a SQLite file in that folder, or a new Postgres database) and pool `<tag>-<prefix>`; every cleanup goes
 * onto `cleanups`.
 */
export async function farmFor(
  tag: string,
  kind: 'sqlite' | 'postgres',
  cleanups: Array<() => unknown>,
  opts: Omit<FarmOptions, 'dbUrl' | 'pool'> = {},
): Promise<{ farm: Farm; pool: string; dbUrl: string; dir: string }> {
  const { prefix, dir } = scratch(tag, cleanups);
  let dbUrl = sqliteUrl(dir);
  if (kind === 'postgres') {
    const pg = await freshPostgres();
    cleanups.push(pg.drop);
    dbUrl = pg.url;
  }
  const pool = `${tag}-${prefix}`;
  const farm = await startFarm({ ...opts, dbUrl, pool });
  cleanups.push(farm.close);
  return { farm, pool, dbUrl, dir };
}

/** Waits until every run of the sweep has an outcome in the database. */
export async function runsSettled(db: Db, sweepId: string, expected: number): Promise<boolean> {
  const open = await db.run.count({ where: { sweepId, status: 'queued' } });
  const all = await db.run.count({ where: { sweepId } });
  return all === expected && open === 0;
}
