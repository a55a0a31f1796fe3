/**
 * A recorded sweep as the queue needs it, read back from the database: the
 * job template its submission used (timeouts, rounds, each build's bundle
 * hash, flags and commit), so that `sweep retry ID` can enqueue a run again
 * without the sweep file.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { BuildFlagSchema, DEFAULT_GPUS_WAIT_S } from '../schema/sweep.js';
import { buildCommit, type JobTemplate } from './job.js';
import { definitionHash } from './sweep-definition.js';

/** The fields of Sweep.spec (db/plan.ts: the normalised sweep and its resolved builds) a job is made of. */
const StoredSpecSchema = z.looseObject({
  pool: z.string(),
  timeout_s: z.int().positive(),
  power_wait_s: z.int().nonnegative(),
  gpus_wait_s: z.int().nonnegative().optional(),
  rounds: z.int().positive(),
  seed: z.int().nonnegative(),
  resolvedBuilds: z.array(z.looseObject({ name: z.string(), source: z.string(), flags: z.array(BuildFlagSchema) })).min(1),
});

/**
 * `redis`: the jobs name the sweep's definition there (queue/sweep-definition.ts) when Redis still holds it
 * (enqueueUnfinished pins it once it enqueues); the runs of a sweep whose definition is gone are recorded
 * by the collector as before.
 */
export async function storedTemplate(db: Db, sweepId: string, redis?: Redis): Promise<JobTemplate> {
  const sweep = await db.sweep.findUnique({ where: { id: sweepId }, select: { spec: true } });
  if (!sweep) throw new UsageError(`sweep ${sweepId}: no such sweep in the database (moefarm sweep list shows them)`);
  let value: unknown;
  try {
    value = JSON.parse(sweep.spec);
  } catch {
    value = null;
  }
  const parsed = StoredSpecSchema.safeParse(value);
  if (!parsed.success) {
    throw new UsageError(`sweep ${sweepId}: its recorded plan cannot make jobs (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'}); re-submit its sweep file instead`);
  }
  const spec = parsed.data;
  const hashes = spec.resolvedBuilds.map((b) => b.source).filter((h) => h !== 'worker');
  const sources = new Map((hashes.length ? await db.buildSource.findMany({ where: { hash: { in: hashes } } }) : []).map((s) => [s.hash, s]));
  const definition = redis ? await definitionHash(redis, sweepId) : null;
  return {
    sweepId,
    definition,
    pool: spec.pool,
    timeoutS: spec.timeout_s,
    powerWaitS: spec.power_wait_s,
    gpusWaitS: spec.gpus_wait_s ?? DEFAULT_GPUS_WAIT_S,
    rounds: spec.rounds,
    seed: spec.seed,
    builds: spec.resolvedBuilds.map((b) => {
      if (b.source === 'worker') return { name: b.name, flags: b.flags, source: { worker: true as const } };
      const src = sources.get(b.source);
      return { name: b.name, flags: b.flags, source: { bundle: b.source, commit: src ? buildCommit(src.gitCommit, src.dirty) : null } };
    }),
  };
}
