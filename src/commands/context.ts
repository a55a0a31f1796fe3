/** Opening the services a command needs, and closing them whatever happens. */
import type { Redis } from 'ioredis';
import { openDb, type Db } from '../db/client.js';
import { assertRedisReachable, createRedis } from '../queue/connection.js';

/**
 * `mustExist`: the command reads, or acts on sweeps already recorded; a DATABASE_URL that names no moefarm
 * database is a usage error (exit 2), never a new empty database.
 */
export async function withDb<T>(fn: (db: Db) => Promise<T>, opts: { mustExist?: boolean } = {}): Promise<T> {
  const db = await openDb({ mustExist: opts.mustExist ?? false });
  try {
    return await fn(db);
  } finally {
    await db.$disconnect();
  }
}

export async function withRedis<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
  await assertRedisReachable();
  const redis = createRedis();
  redis.on('error', () => {}); // reconnects on its own; commands fail loudly
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** Resolves on the first SIGINT/SIGTERM; a second one calls `force`. */
export function onShutdown(graceful: () => Promise<void>, force: () => void): Promise<void> {
  return new Promise((resolvePromise) => {
    let count = 0;
    const handler = (sig: NodeJS.Signals) => {
      count++;
      if (count === 1) {
        process.stderr.write(`moefarm: ${sig}: finishing the work in flight (send again to stop now)\n`);
        void graceful().finally(() => resolvePromise());
      } else {
        force();
      }
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}
