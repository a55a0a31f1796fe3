/** Per-test setup shared by the fault tests: a temp dir, an owned Redis, a key prefix, a SQLite file. */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Redis } from 'ioredis';
import { csrcDir } from '../../src/config.js';
import { openDb, type Db } from '../../src/db/client.js';
import { ensureBinary } from '../../worker/build.js';
import { TEST_CACHE } from '../helpers/env.js';
import { sqliteUrl, tempDir } from '../helpers/services.js';
import { killAll, OwnedRedis, type FarmEnv, type RedisOpts } from './procs.js';

export interface Rig extends FarmEnv {
  dir: string;
  pool: string;
  dbUrl: string;
  db: Db;
  client: Redis;
}

const cleanups: Array<() => unknown> = [];

/** Everything a fault test needs; `teardown()` (afterEach) undoes it, processes first. */
export async function rig(tag: string, opts: Partial<RedisOpts> & { lockMs?: number; dbUrl?: string } = {}): Promise<Rig> {
  const t = tempDir(`faults-${tag}`);
  cleanups.push(t.cleanup);
  const redis = await OwnedRedis.start({ dir: t.dir, ...opts });
  const prefix = `f-${randomUUID().slice(0, 8)}`;
  // In-process producers (enqueuePlan, submitPlan) read the prefix from the environment.
  process.env['MOEFARM_PREFIX'] = prefix;
  const dbUrl = opts.dbUrl ?? sqliteUrl(t.dir);
  const db = await openDb({ url: dbUrl });
  cleanups.push(() => db.$disconnect());
  const client = redis.client();
  cleanups.push(() => client.disconnect());
  const stateDir = join(t.dir, 'state');
  return { dir: t.dir, redis, prefix, lockMs: opts.lockMs ?? 2000, pool: `p-${prefix}`, dbUrl, db, client, stateDir };
}

export async function teardown(): Promise<void> {
  await killAll();
  while (cleanups.length) {
    try {
      await cleanups.pop()!();
    } catch {
      /* best effort */
    }
  }
}

/** Builds the CPU binary into the shared test cache once, so no test times a compile. */
export async function warmBuild(): Promise<void> {
  await ensureBinary({ csrc: csrcDir(), cache: TEST_CACHE, backend: 'cpu', arch: 'sm_90a' });
}

/** Pids of the children of `pid` named moe-bench (the native runs in flight). */
export async function benchChildren(pid: number): Promise<number[]> {
  const r = await execa('pgrep', ['-P', String(pid), '-x', 'moe-bench'], { reject: false });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}
