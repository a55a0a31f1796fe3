/**
 * Source bundles in Redis: stored once under their hash and shared by every
 * sweep that uses them. Each bundle keeps the set of unfinished sweeps that
 * need it; each sweep keeps the set of its bundles. Submitting pins a bundle
 * (no expiry); the collector, when a sweep's last run has its outcome,
 * releases the sweep, and a bundle no sweep needs any more expires after a
 * grace period (MOEFARM_BUNDLE_GRACE_S): time for a late duplicate delivery
 * or an `--until-confident` repetition, which pins it again.
 */
import type { Redis } from 'ioredis';
import { queuePrefix } from '../config.js';

export function bundleKey(hash: string, prefix = queuePrefix()): string {
  return `${prefix}:bundle:${hash}`;
}

function usersKey(hash: string, prefix: string): string {
  return `${prefix}:bundle:${hash}:sweeps`;
}

function sweepBundlesKey(sweepId: string, prefix: string): string {
  return `${prefix}:sweep:${sweepId}:bundles`;
}

/** Stores (or re-pins) the bundles of a sweep, in one transaction. */
export async function storeBundles(redis: Redis, sweepId: string, bundles: ReadonlyArray<{ hash: string; blob: Buffer }>, prefix = queuePrefix()): Promise<void> {
  if (bundles.length === 0) return;
  const m = redis.multi();
  for (const b of bundles) {
    // SET (not NX): whatever sat under this key before is replaced by bytes that hash right, and its expiry goes.
    m.set(bundleKey(b.hash, prefix), b.blob);
    m.sadd(usersKey(b.hash, prefix), sweepId);
    m.persist(usersKey(b.hash, prefix));
    m.sadd(sweepBundlesKey(sweepId, prefix), b.hash);
  }
  const res = await m.exec();
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw new Error(`storing source bundles of sweep ${sweepId} failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
}

export async function fetchBundle(redis: Redis, hash: string, prefix = queuePrefix()): Promise<Buffer | null> {
  return redis.getBuffer(bundleKey(hash, prefix));
}

// One script, so a submit that pins a bundle between the SREM and the EXPIRE cannot be overtaken.
const RELEASE = `
local n = 0
for _, h in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local users = ARGV[1] .. ':bundle:' .. h .. ':sweeps'
  redis.call('SREM', users, ARGV[2])
  if redis.call('SCARD', users) == 0 then
    redis.call('EXPIRE', ARGV[1] .. ':bundle:' .. h, ARGV[3])
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n`;

/** A finished sweep no longer needs its bundles: those no other sweep needs expire after `graceS`. Returns how many. */
export async function releaseSweepBundles(redis: Redis, sweepId: string, graceS: number, prefix = queuePrefix()): Promise<number> {
  return Number(await redis.eval(RELEASE, 1, sweepBundlesKey(sweepId, prefix), prefix, sweepId, String(Math.max(1, Math.round(graceS)))));
}

// One script, against the release script: a bundle is pinned whole (its expiry gone, the sweep among its users) or reported missing.
const PIN = `
local missing = {}
for i, h in ipairs(ARGV) do
  if i > 2 then
    local bundle = ARGV[1] .. ':bundle:' .. h
    if redis.call('EXISTS', bundle) == 1 then
      redis.call('PERSIST', bundle)
      redis.call('SADD', bundle .. ':sweeps', ARGV[2])
      redis.call('PERSIST', bundle .. ':sweeps')
      redis.call('SADD', KEYS[1], h)
    else
      table.insert(missing, h)
    end
  end
end
return missing`;

/**
 * Pins bundles already in Redis for a sweep that gets work again (sweep retry), without their bytes.
 * Returns the hashes that are no longer there (released and expired): those runs cannot be retried
 * from Redis alone; re-submitting the sweep file stores them again.
 */
export async function pinBundles(redis: Redis, sweepId: string, hashes: readonly string[], prefix = queuePrefix()): Promise<string[]> {
  if (hashes.length === 0) return [];
  const missing = (await redis.eval(PIN, 1, sweepBundlesKey(sweepId, prefix), prefix, sweepId, ...hashes)) as string[];
  return missing;
}
