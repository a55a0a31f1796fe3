/**
 * A farm on GPUs of the nvidia-smi TEST DOUBLE (test/doubles/nvidia-smi; CI has no GPU), for the tests of
 * GPU control and of jobs on several GPUs: the double first on PATH, a fresh key prefix and pool, a SQLite
 * database, a real collector, and real workers (CPU backend) started as the test asks. The build cache is
 * shared by all tests; the workers' state (GPU-control markers, leases) lives beside it in `<dir>/cache-link`,
 * per test.
 */
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Collector } from '../../src/collector/collector.js';
import { openDb, type Db } from '../../src/db/client.js';
import { silentLog } from '../../src/util/log.js';
import { FarmWorker, type WorkerOptions } from '../../worker/worker.js';
import { FakeSmi, type FakeState } from '../doubles/fake-gpu.js';
import { TEST_CACHE, TEST_REDIS_URL } from './env.js';
import { ROOT, scratch, sqliteUrl } from './services.js';

export interface GpuRig {
  pool: string;
  smi: FakeSmi;
  dir: string;
  /** The workers' MOEFARM_CACHE: the shared builds, this test's state. */
  cache: string;
  db: Db;
  redis: Redis;
  /** What close() undoes, last first; a test may add its own. */
  cleanups: Array<() => unknown>;
  close: () => Promise<void>;
}

/** `host`: the double's GPUs and links (two fake H100s when absent). */
export async function gpuRig(tag: string, opts: { host?: Partial<FakeState>; reconcileEveryMs: number }): Promise<GpuRig> {
  const cleanups: Array<() => unknown> = [];
  const fresh = scratch(tag, cleanups);
  const smi = new FakeSmi(opts.host);
  smi.install();
  cleanups.push(() => smi.cleanup());
  const cache = join(fresh.dir, 'cache-link');
  mkdirSync(cache, { recursive: true });
  mkdirSync(join(TEST_CACHE, 'builds'), { recursive: true });
  symlinkSync(join(TEST_CACHE, 'builds'), join(cache, 'builds'));
  const db = await openDb({ url: sqliteUrl(fresh.dir) });
  cleanups.push(() => db.$disconnect());
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  cleanups.push(() => redis.disconnect());
  const cc = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const collector = new Collector({ db, connection: cc, reconcileEveryMs: opts.reconcileEveryMs, log: silentLog });
  cleanups.push(async () => {
    await collector.close();
    cc.disconnect();
  });
  const close = async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  return { pool: `${tag}-${fresh.prefix}`, smi, dir: fresh.dir, cache, db, redis, cleanups, close };
}

/** A worker of the rig's pool on this checkout's csrc/, started; `opts` names its GPUs (gpu or gpus) and the rest. */
export async function startRigWorker(rig: GpuRig, opts: Pick<WorkerOptions, 'gpu'> & Partial<WorkerOptions>): Promise<FarmWorker> {
  const conn = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const w = new FarmWorker({ connection: conn, pool: rig.pool, backend: 'cpu', arch: 'sm_90a', csrc: join(ROOT, 'csrc'), cache: rig.cache, log: silentLog, ...opts });
  rig.cleanups.push(async () => {
    await w.close();
    conn.disconnect();
  });
  await w.start();
  return w;
}
