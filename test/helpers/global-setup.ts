/**
 * Once per test run: check the real services are there (Redis, Postgres) and
 * build the CPU binary into the shared test cache, so each test file finds it.
 */
import { mkdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { TEST_CACHE, TEST_PG_ADMIN_URL, TEST_REDIS_URL } from './env.js';

export default async function setup(): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`tests need Redis at ${TEST_REDIS_URL} (${(err as Error).message}); .ci/run starts one`);
  } finally {
    redis.disconnect();
  }
  const client = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new Error(`tests need Postgres at ${TEST_PG_ADMIN_URL} (${(err as Error).message}); .ci/run starts one`);
  } finally {
    await client.end().catch(() => {});
  }
  mkdirSync(TEST_CACHE, { recursive: true });
}
