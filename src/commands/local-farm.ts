/**
 * A farm inside the command's own process (`moefarm demo`, `bisect --local`): a collector and a worker on
 * the configured database and the Redis at `url`, closed whatever happens. Their logs are warnings only:
 * a line per job would break the progress and the lines the command writes.
 */
import type { Redis } from 'ioredis';
import { Collector } from '../collector/collector.js';
import { cacheDir, csrcDir, stateDir } from '../config.js';
import { openDb, type Db } from '../db/client.js';
import { createRedis } from '../queue/connection.js';
import { createLogger } from '../util/log.js';

export interface LocalFarmOptions {
  /** The Redis server (REDIS_URL, or a private one the caller started). */
  url: string;
  pool: string;
  backend: 'cpu' | 'cuda';
  /** How long a job held by a process killed mid-run stays locked (the worker's default when absent). */
  lockDurationMs?: number;
}

/** Runs `fn` with the database and a Redis connection of its own while the worker and collector serve the pool. */
export async function withLocalFarm<T>(opts: LocalFarmOptions, fn: (db: Db, redis: Redis) => Promise<T>): Promise<T> {
  const db = await openDb();
  const conns = [0, 1, 2].map(() => createRedis(opts.url));
  for (const c of conns) c.on('error', () => {});
  const [redis, workerConn, collectorConn] = conns as [Redis, Redis, Redis];
  const collector = new Collector({ db, connection: collectorConn, log: createLogger({ name: 'collector', level: 'warn' }) });
  // Loaded here, not at the top: only the commands that run a farm in-process need the worker's code.
  const { FarmWorker } = await import('../../worker/worker.js');
  const worker = new FarmWorker({
    ...(opts.lockDurationMs !== undefined ? { lockDurationMs: opts.lockDurationMs } : {}),
    connection: workerConn,
    pool: opts.pool,
    backend: opts.backend,
    gpu: opts.backend === 'cuda' ? 0 : null,
    arch: 'sm_90a',
    csrc: csrcDir(),
    cache: cacheDir(),
    stateDir: stateDir(),
    log: createLogger({ name: 'worker', level: 'warn' }),
  });
  try {
    await worker.start();
    return await fn(db, redis);
  } finally {
    await worker.close();
    await collector.close();
    for (const c of conns) c.disconnect();
    await db.$disconnect();
  }
}
