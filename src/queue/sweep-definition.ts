/**
 * A sweep carries its own definition: what its plan writes (the Sweep row:
 * name, pool, the spec with its baseline, interleave and rounds, each build's
 * source hash; the BuildSource rows; one Run row per planned run) is stored
 * once per sweep in Redis, compressed, under `<prefix>:sweepdef:<sweepId>`,
 * and each job names it by the sweep id and the definition's hash (a job
 * never holds the plan: 200,000 jobs must not hold 200,000 copies).
 *
 * Why: the plan used to reach only the submitter's database. Submitted without
 * DATABASE_URL, it went into a local ./moefarm.db while the collector wrote
 * elsewhere; there the results were filed under `(unplanned)`, with no name
 * and no baseline. Now the collector, at the first outcome of a sweep its
 * database holds no plan for, reads the definition and writes the plan
 * through the same code as `sweep submit` (db/plan.ts writePlanRows), then the
 * result. A definition that is gone (expired, Redis lost) leaves the old
 * behaviour, with a warning line.
 *
 * Kept like the source bundles (source/store.ts): no expiry while the sweep
 * has work; when its last run has its outcome, the collector (or `sweep
 * cancel`) lets it expire after the same grace period; a re-submit, `sweep
 * resume` or `sweep retry` pins it again.
 *
 * Stored text: one JSON line of what may change between two submissions of
 * the same sweep (its label, the sweep file's path), then the plan as JSON.
 * The hash is the plan's (sha256 of that text), so a label changed by a
 * re-submit leaves the jobs already queued naming the right definition. The
 * plan holds each point's canonical JSON once and each run as its group
 * (points) and repetition count.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { queuePrefix } from '../config.js';
import { definitionKey } from './names.js';
import type { PlanRows } from '../db/plan.js';
import { sweepRowOf } from '../db/plan.js';
import { SourceMetaSchema } from '../source/describe.js';
import { releaseSweepBundles } from '../source/store.js';
import { pointJson, runId, type Plan } from '../sweep/expand.js';
import { sha256 } from '../util/hash.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

const VERSION = 1;

const PlanPartSchema = z.strictObject({
  v: z.literal(VERSION),
  sweep: z.strictObject({ id: z.string(), name: z.string(), pool: z.string(), spec: z.string(), points: z.int().nonnegative(), runs: z.int().nonnegative() }),
  sources: z.array(SourceMetaSchema.extend({ files: z.int().nullable().optional(), bytes: z.int().nullable().optional() })),
  /** canonicalJson of each planned point ({build, hash, point}). */
  points: z.array(z.string()),
  /** Each run group: its hash, its points (indices into `points`), and its repetitions (runs rep 0..reps-1). */
  groups: z.array(z.tuple([z.string(), z.array(z.int().nonnegative()), z.int().positive()])),
});
type PlanPart = z.infer<typeof PlanPartSchema>;

const HeaderSchema = z.strictObject({ label: z.string().nullable(), source: z.string().nullable() });

export interface EncodedDefinition {
  sweepId: string;
  /** sha256 of the plan's text: what each job carries. */
  hash: string;
  /** gzip of the header line and the plan. */
  blob: Buffer;
}

/** The definition of a planned sweep, encoded for Redis. */
export async function encodeDefinition(plan: Plan, source: string | null, label: string | null): Promise<EncodedDefinition> {
  const index = new Map(plan.points.map((p, i) => [p, i]));
  const groups = new Map<string, { points: number[]; reps: number; runs: number }>();
  for (const r of plan.runs) {
    let g = groups.get(r.groupHash);
    if (!g) {
      const points = r.points.map((p) => index.get(p));
      if (points.some((i) => i === undefined)) throw new Error(`sweep ${plan.sweepId}: run ${r.id} holds a point that is not in the plan`);
      groups.set(r.groupHash, (g = { points: points as number[], reps: 0, runs: 0 }));
    }
    g.reps = Math.max(g.reps, r.rep + 1);
    g.runs++;
  }
  // The runs are each group's repetitions 0..reps-1 (sweep/expand.ts planSweep): checked, so the plan read back is this one.
  for (const [hash, g] of groups) if (g.runs !== g.reps) throw new Error(`sweep ${plan.sweepId}: group ${hash} has ${g.runs} runs for ${g.reps} repetitions`);
  const { source: _source, ...row } = sweepRowOf(plan, source);
  const part: PlanPart = {
    v: VERSION,
    sweep: row,
    sources: plan.builds.flatMap((b) => (b.source.kind === 'bundle' ? [{ ...b.source.meta, files: b.source.files, bytes: b.source.bytes }] : [])),
    points: plan.points.map(pointJson),
    groups: [...groups].map(([hash, g]) => [hash, g.points, g.reps]),
  };
  const text = JSON.stringify(part);
  const header = JSON.stringify({ label, source });
  // Level 1: a 200,000-run plan is tens of MB of repetitive JSON; level 1 keeps most of the gain at a fraction of the time.
  const blob = await gzipAsync(Buffer.from(`${header}\n${text}`, 'utf8'), { level: 1 });
  return { sweepId: plan.sweepId, hash: sha256(text), blob };
}

export interface SweepDefinition {
  sweepId: string;
  hash: string;
  label: string | null;
  source: string | null;
  name: string;
  rows: PlanRows;
}

/** Reads a stored definition back; throws naming what is wrong when it is not one. */
export async function decodeDefinition(blob: Buffer): Promise<SweepDefinition> {
  const text = (await gunzipAsync(blob)).toString('utf8');
  const nl = text.indexOf('\n');
  if (nl < 0) throw new Error('no header line');
  const header = HeaderSchema.parse(JSON.parse(text.slice(0, nl)));
  const planText = text.slice(nl + 1);
  const part = PlanPartSchema.parse(JSON.parse(planText));
  const runs: Array<{ id: string; groupHash: string; rep: number; group: number }> = [];
  const maxReps = part.groups.reduce((m, [, , reps]) => Math.max(m, reps), 0);
  // Repetition-major, as planSweep orders them.
  for (let rep = 0; rep < maxReps; rep++) {
    part.groups.forEach(([hash, , reps], g) => {
      if (rep < reps) runs.push({ id: runId(part.sweep.id, hash, rep), groupHash: hash, rep, group: g });
    });
  }
  const params = part.groups.map(([, points]) => {
    if (points.some((i) => i >= part.points.length)) throw new Error('a group names a point that is not in the definition');
    return `[${points.map((i) => part.points[i]!).join(',')}]`;
  });
  return {
    sweepId: part.sweep.id,
    hash: sha256(planText),
    label: header.label,
    source: header.source,
    name: part.sweep.name,
    rows: { row: { ...part.sweep, source: header.source }, sources: part.sources, runs, params: (i) => params[runs[i]!.group]! },
  };
}

/** Stores (or replaces) a sweep's definition, with no expiry. */
export async function storeDefinition(redis: Redis, d: EncodedDefinition, prefix = queuePrefix()): Promise<void> {
  const key = definitionKey(d.sweepId, prefix);
  const res = await redis.multi().del(key).hset(key, 'def', d.blob, 'hash', d.hash).exec();
  const failed = res?.find(([err]) => err);
  if (!res || failed) throw new Error(`storing the definition of sweep ${d.sweepId} failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
}

/** The stored definition's blob and hash, or null when Redis holds none. */
export async function fetchDefinition(redis: Redis, sweepId: string, prefix = queuePrefix()): Promise<{ blob: Buffer; hash: string } | null> {
  const [blob, hash] = await redis.hmgetBuffer(definitionKey(sweepId, prefix), 'def', 'hash');
  return blob && hash ? { blob, hash: hash.toString('utf8') } : null;
}

/** The hash of a sweep's stored definition, or null when Redis holds none. */
export async function definitionHash(redis: Redis, sweepId: string, prefix = queuePrefix()): Promise<string | null> {
  return redis.hget(definitionKey(sweepId, prefix), 'hash');
}

/** A sweep that gets jobs again (sweep resume, sweep retry): its definition kept with no expiry until it ends again. */
export async function pinDefinition(redis: Redis, sweepId: string, prefix = queuePrefix()): Promise<void> {
  await redis.persist(definitionKey(sweepId, prefix));
}

/** A finished (or cancelled) sweep: its definition expires after `graceS`, as its bundles do. */
export async function releaseDefinition(redis: Redis, sweepId: string, graceS: number, prefix = queuePrefix()): Promise<void> {
  await redis.expire(definitionKey(sweepId, prefix), Math.max(1, Math.round(graceS)));
}

/** A sweep every run of which has an outcome (finished or cancelled): its source bundles and its definition expire after `graceS`. */
export async function releaseEndedSweep(redis: Redis, sweepId: string, graceS: number, prefix = queuePrefix()): Promise<void> {
  await releaseSweepBundles(redis, sweepId, graceS, prefix);
  await releaseDefinition(redis, sweepId, graceS, prefix);
}
