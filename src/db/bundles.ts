/**
 * Source bundles kept in the database beside the plan (SourceBundle): the
 * database is the truth for what a sweep is, and a bundle is part of that.
 * Redis holds the copy workers fetch; when Redis has lost it (FLUSHALL, a new
 * instance, the grace period after a finished sweep), `sweep resume` and
 * `sweep retry` store it again from here (queue/requeue.ts ensureBundles).
 * One row per distinct source (38-60 KiB for this project's csrc/).
 */
import type { Db } from './client.js';
import { isUniqueViolation } from './errors.js';

export async function saveBundles(db: Db, bundles: ReadonlyArray<{ hash: string; blob: Buffer }>): Promise<void> {
  if (bundles.length === 0) return;
  const have = new Set((await db.sourceBundle.findMany({ where: { hash: { in: bundles.map((b) => b.hash) } }, select: { hash: true } })).map((r) => r.hash));
  for (const b of bundles) {
    if (have.has(b.hash)) continue;
    try {
      await db.sourceBundle.create({ data: { hash: b.hash, blob: new Uint8Array(b.blob) } });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err; // a concurrent submit stored the same bytes (named by their hash)
    }
  }
}

/** The bundles the database holds of these hashes. */
export async function loadBundles(db: Db, hashes: readonly string[]): Promise<Array<{ hash: string; blob: Buffer }>> {
  if (hashes.length === 0) return [];
  const rows = await db.sourceBundle.findMany({ where: { hash: { in: [...hashes] } } });
  return rows.map((r) => ({ hash: r.hash, blob: Buffer.from(r.blob) }));
}
