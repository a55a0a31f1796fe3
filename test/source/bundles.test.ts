/**
 * Source bundles as untrusted input, and their life in Redis.
 *
 * Hostile bundles are written straight into Redis under the hash a job names
 * (tampered, truncated, oversized, a '../' path, an absolute path, a symbolic
 * link, a hard link, missing): a real worker with an empty cache ends each
 * run `bad-source` with a reason that says what was wrong, builds nothing and
 * writes nothing outside its cache. Then the lifecycle: a bundle shared by two
 * sweeps stays while either is unfinished and expires after the grace period
 * once both are done. Real Redis, SQLite, the real CPU binary.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Queue } from 'bullmq';
import { Header } from 'tar';
import { afterAll, describe, expect, it } from 'vitest';
import { queuePrefix } from '../../src/config.js';
import { recordPlan } from '../../src/db/plan.js';
import { RUN_JOB_OPTIONS } from '../../src/queue/options.js';
import { runQueueName } from '../../src/queue/names.js';
import { planBundles, submitPlan } from '../../src/queue/submit.js';
import { toJob } from '../../src/queue/job.js';
import { BundleError, packBundle, readBundle } from '../../src/source/bundle.js';
import { hashSources, snapshotDir, snapshotOf, type SourceFile } from '../../src/source/inputs.js';
import { bundleKey, storeBundles } from '../../src/source/store.js';
import { planSweep } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { runsSettled, startFarm } from '../helpers/farm.js';
import { ROOT, scratch, sqliteUrl, waitFor } from '../helpers/services.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const tiny = (pool: string, name: string, tokens = 1) => `
name: ${name}
pool: ${pool}
matrix:
  variant: reference
  model: tiny
  tokens: ${tokens}
  warmup: 0
  iters: 2
`;

/** A tar.gz of raw entries, written with the tar package's header encoder: anything an attacker could write. */
function rawTar(entries: Array<{ path: string; type?: 'File' | 'SymbolicLink' | 'Link'; linkpath?: string; data?: string }>): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const h = new Header({ path: e.path, mode: 0o644, size: e.type && e.type !== 'File' ? 0 : data.length, mtime: new Date(0), type: e.type ?? 'File', ...(e.linkpath ? { linkpath: e.linkpath } : {}) });
    h.encode();
    blocks.push(h.block!);
    if (!e.type || e.type === 'File') {
      blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const real = snapshotDir(join(ROOT, 'csrc'));
const fileHash = (files: Array<{ path: string; data?: string }>) => hashSources(files.map((f): SourceFile => ({ path: f.path, data: Buffer.from(f.data ?? '') })));

describe('reading a bundle', () => {
  it('round-trips the build inputs and checks the hash before handing anything out', async () => {
    const blob = packBundle(real);
    const back = await readBundle(blob, real.hash);
    expect(back.hash).toBe(real.hash);
    expect(back.files.map((f) => f.path)).toEqual(real.files.map((f) => f.path));
    expect(real.files.map((f) => f.path)).toContain('variants.json');
    expect(real.files.some((f) => /\.(md|csv|sh|py)$/.test(f.path))).toBe(false); // notes, results and scripts are not build inputs
    await expect(readBundle(blob, 'f'.repeat(64))).rejects.toThrow(BundleError);
  });
});

describe('hostile bundles written straight into Redis', () => {
  it('end their runs as bad-source with the reason, build nothing, write nothing outside the cache', async () => {
    const fresh = scratch('hostile', cleanups);
    const cache = join(fresh.dir, 'cache');
    const pool = `hostile-${fresh.prefix}`;
    const farm = await startFarm({ dbUrl: sqliteUrl(fresh.dir), pool, cache });
    cleanups.push(farm.close);
    const plan = planSweep(parseSweepText(tiny(pool, 'hostile'), 'hostile.yaml'));
    await recordPlan(farm.db, plan, null);

    const evil = [{ path: '../evil.h', data: 'int x;' }];
    const abs = [{ path: `${fresh.dir}/abs.h`, data: 'int y;' }];
    const other = snapshotOf([{ path: 'Makefile', data: Buffer.from('all:\n') }]);
    const full = packBundle(real);
    const cases: Array<{ name: string; hash: string; blob: Buffer | null; reason: RegExp }> = [
      { name: 'tampered', hash: fileHash([{ path: 'Makefile', data: 'all: ok\n' }]), blob: packBundle(other), reason: /hash to [0-9a-f]{12}, not to the hash the job names \(tampered/ },
      { name: 'truncated', hash: real.hash, blob: full.subarray(0, Math.floor(full.length / 2)), reason: /truncated or corrupt/ },
      { name: 'oversized', hash: 'e'.repeat(64), blob: Buffer.alloc(4 * 1024 * 1024 + 1, 7), reason: /4194305 bytes, more than the limit of 4194304/ },
      { name: 'dotdot', hash: fileHash(evil), blob: rawTar(evil), reason: /entry "\.\.\/evil\.h" refused: a path with '\.\.'/ },
      { name: 'absolute', hash: fileHash(abs), blob: rawTar(abs), reason: /refused: an absolute path/ },
      { name: 'symlink', hash: 'd'.repeat(64), blob: rawTar([{ path: 'src/common.h', type: 'SymbolicLink', linkpath: '/etc/passwd' }]), reason: /"src\/common\.h" refused: a symbolic link \(to "\/etc\/passwd"\)/ },
      { name: 'hardlink', hash: 'c'.repeat(64), blob: rawTar([{ path: 'src/common.h', type: 'Link', linkpath: '../../x' }]), reason: /refused: a hard link/ },
      { name: 'missing', hash: 'b'.repeat(64), blob: null, reason: /source bundle bbbbbbbbbbbb is not in Redis .* nothing else is built in its place/ },
    ];
    const q = new Queue(runQueueName(pool), { connection: farm.redis, prefix: queuePrefix() });
    const base = toJob(plan, plan.runs[0]!, Date.now());
    for (const c of cases) {
      // The truncated case must not find a cached build of the real source: it uses this worker's empty cache.
      if (c.blob) await farm.redis.set(bundleKey(c.hash), c.blob);
      const runId = `${plan.sweepId}-${c.name}-r0`;
      const job = { ...base, runId, builds: base.builds.map((b) => ({ ...b, source: { bundle: c.hash, commit: null } })) };
      await q.add('run', job, { ...RUN_JOB_OPTIONS, jobId: runId });
    }
    await q.close();
    await waitFor('every hostile run to end', async () => (await farm.db.run.count({ where: { sweepId: plan.sweepId, status: { not: 'queued' } } })) >= cases.length, 60_000);
    for (const c of cases) {
      const run = await farm.db.run.findUniqueOrThrow({ where: { id: `${plan.sweepId}-${c.name}-r0` } });
      expect([c.name, run.status]).toEqual([c.name, 'bad-source']);
      expect(run.reason, c.name).toMatch(c.reason);
      expect(run.reason, c.name).toMatch(/^build default: /);
    }
    expect(existsSync(join(cache, 'builds')) ? readdirSync(join(cache, 'builds')) : []).toEqual([]);
    expect(existsSync(join(cache, '..', 'evil.h')) || existsSync(join(cache, 'evil.h')) || existsSync(`${fresh.dir}/abs.h`)).toBe(false);
    expect(await farm.db.build.count()).toBe(0);
  });
});

describe('a bundle in Redis', () => {
  it('is kept while an unfinished sweep needs it and removed after the grace period once its sweeps are done', async () => {
    const fresh = scratch('bundle-life', cleanups);
    const pool = `life-${fresh.prefix}`;
    const farm = await startFarm({ dbUrl: sqliteUrl(fresh.dir), pool, testHooks: true, bundleGraceS: 1 });
    cleanups.push(farm.close);
    const quick = planSweep(parseSweepText(tiny(pool, 'quick', 1), 'quick.yaml'));
    const slow = planSweep(parseSweepText(tiny(pool, 'slow', 2), 'slow.yaml'));
    const hash = planBundles(quick)[0]!.hash;
    expect(planBundles(slow)[0]!.hash).toBe(hash); // one source, shared
    const key = bundleKey(hash);

    // The quick sweep first; then the slow one, whose run sleeps 4 s in the binary (TEST ONLY hook), so it is
    // unfinished when the quick one ends.
    await submitPlan(farm.db, farm.redis, quick, null);
    expect(await farm.redis.ttl(key)).toBe(-1); // stored, no expiry
    await storeBundles(farm.redis, slow.sweepId, planBundles(slow));
    await recordPlan(farm.db, slow, null);
    const q = new Queue(runQueueName(pool), { connection: farm.redis, prefix: queuePrefix() });
    await q.add('run', { ...toJob(slow, slow.runs[0]!, Date.now()), test: { sleepMs: 4000 } }, { ...RUN_JOB_OPTIONS, jobId: slow.runs[0]!.id });
    await q.close();

    await waitFor('the quick sweep', () => runsSettled(farm.db, quick.sweepId, 1), 60_000);
    expect(await runsSettled(farm.db, slow.sweepId, 1)).toBe(false);
    expect(await farm.redis.exists(key)).toBe(1);
    expect(await farm.redis.ttl(key)).toBe(-1); // the slow sweep still holds it

    await waitFor('the slow sweep', () => runsSettled(farm.db, slow.sweepId, 1), 60_000);
    await waitFor('the bundle to expire after the grace period', async () => (await farm.redis.exists(key)) === 0, 10_000, 100);
    expect((await farm.db.run.findMany({ where: { sweepId: { in: [quick.sweepId, slow.sweepId] } } })).map((r) => r.status)).toEqual(['done', 'done']);

    // Submitting again stores it again: a sweep never names a bundle that is not there.
    await submitPlan(farm.db, farm.redis, planSweep(parseSweepText(tiny(pool, 'again', 3), 'again.yaml')), null);
    expect(await farm.redis.ttl(key)).toBe(-1);
  });
});
