/**
 * The worker's heartbeat in Redis: a live key with a short expiry, refreshed
 * every few seconds, plus a lasting snapshot in a hash, so `moefarm workers`
 * can show live workers and those gone silent.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { heartbeatTtlSeconds, queuePrefix } from '../src/config.js';
import { workerLiveKey, workersHashKey } from '../src/queue/names.js';

/** A heartbeat every 5 s; a worker whose live key (20 s) lapsed is shown as silent. Tests shorten both (MOEFARM_HEARTBEAT_TTL_S). */
export const HEARTBEAT_TTL_S = heartbeatTtlSeconds();
export const HEARTBEAT_EVERY_MS = Math.max(200, Math.floor((HEARTBEAT_TTL_S * 1000) / 4));

export interface WorkerSnapshot {
  id: string;
  state: 'running' | 'stopped';
  lastBeat: number;
  startedAt: number;
  busyWith: string | null;
  processed: number;
  [k: string]: unknown;
}

/** Most workers of one name (host/pool/device) alive at once: `name`, `name#2` … `name#64`. */
const MAX_INSTANCES = 64;

/**
 * Claims a worker id no live worker holds: `base` if free, else `base#2`, `base#3` …, by setting the id's
 * live key only where it is absent (SET NX), so two workers starting at once cannot both take one id.
 * Several workers on one host, pool and device (or with one --name) get one id each, so their jobs,
 * heartbeats and `moefarm workers` rows stay apart. The claim lasts while the heartbeat renews it; a
 * worker killed outright frees its id when its live key expires.
 */
export async function claimWorkerId(redis: Redis, base: string, snapshot: (id: string) => WorkerSnapshot): Promise<string> {
  for (let n = 1; n <= MAX_INSTANCES; n++) {
    const id = n === 1 ? base : `${base}#${n}`;
    const json = JSON.stringify({ ...snapshot(id), lastBeat: Date.now() });
    if ((await redis.set(workerLiveKey(id), json, 'EX', HEARTBEAT_TTL_S, 'NX')) === 'OK') return id;
  }
  throw new Error(`worker id ${base}: ${MAX_INSTANCES} live workers already hold it and its numbered forms; stop some or give --name`);
}

export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly snapshot: () => WorkerSnapshot,
  ) {}

  async beat(): Promise<void> {
    const s = { ...this.snapshot(), lastBeat: Date.now() };
    const json = JSON.stringify(s);
    await this.redis.multi().set(workerLiveKey(s.id), json, 'EX', HEARTBEAT_TTL_S).hset(workersHashKey(), s.id, json).exec();
  }

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(() => {}), HEARTBEAT_EVERY_MS);
    this.timer.unref();
  }

  /** Last beat, marked stopped; the live key goes at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const s = { ...this.snapshot(), state: 'stopped' as const, lastBeat: Date.now() };
    await this.redis.multi().del(workerLiveKey(s.id)).hset(workersHashKey(), s.id, JSON.stringify(s)).exec();
  }
}

/** A snapshot as read back from Redis (what `Heartbeat` wrote; other fields kept as they are). */
const StoredSnapshotSchema = z.looseObject({
  id: z.string(),
  state: z.enum(['running', 'stopped']),
  lastBeat: z.number(),
  busyWith: z.string().nullable().default(null),
  processed: z.number().default(0),
  identity: z.looseObject({ pool: z.string().optional() }).nullable().optional(),
});
export type StoredSnapshot = z.infer<typeof StoredSnapshotSchema>;

/** Every worker that ever sent a heartbeat (unreadable entries skipped), and whether its live key is still there. */
export async function readWorkers(redis: Redis, prefix = queuePrefix()): Promise<Array<{ snapshot: StoredSnapshot; live: boolean }>> {
  const all = await redis.hgetall(workersHashKey(prefix));
  const entries = Object.entries(all);
  if (entries.length === 0) return [];
  const pipe = redis.pipeline();
  for (const [id] of entries) pipe.exists(workerLiveKey(id, prefix));
  const live = (await pipe.exec()) ?? [];
  const out: Array<{ snapshot: StoredSnapshot; live: boolean }> = [];
  entries.forEach(([, json], i) => {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      return;
    }
    const parsed = StoredSnapshotSchema.safeParse(value);
    if (parsed.success) out.push({ snapshot: parsed.data, live: live[i]?.[1] === 1 });
  });
  return out;
}

/** Live workers (heartbeat within HEARTBEAT_TTL_S) per pool. */
export async function livePools(redis: Redis, prefix = queuePrefix()): Promise<Map<string, number>> {
  const pools = new Map<string, number>();
  for (const w of await readWorkers(redis, prefix)) {
    const pool = w.snapshot.identity?.pool;
    if (w.live && pool !== undefined) pools.set(pool, (pools.get(pool) ?? 0) + 1);
  }
  return pools;
}

/**
 * The warning shown at submit and in `sweep status` when no live worker serves a pool (a misspelt pool,
 * or no worker started): null when one does.
 */
export function noWorkerWarning(pool: string, live: ReadonlyMap<string, number>): string | null {
  if ((live.get(pool) ?? 0) > 0) return null;
  const others = [...live.keys()].sort();
  return (
    `warning: no live worker serves pool ${pool} (no heartbeat in the last ${HEARTBEAT_TTL_S} s): its jobs wait until one starts ` +
    `(moefarm worker --pool ${pool}); ${others.length ? `live workers serve: ${others.join(', ')}` : 'no worker is live on any pool'} (moefarm workers lists them)`
  );
}

/** The most GPUs a live worker of the pool owns (0: none live; a worker without a GPU counts as 1: it serves one-GPU jobs). */
export async function mostLiveGpus(redis: Redis, pool: string, prefix = queuePrefix()): Promise<number> {
  let most = 0;
  for (const w of await readWorkers(redis, prefix)) {
    if (!w.live || w.snapshot.identity?.pool !== pool) continue;
    const n = (w.snapshot as { gpuCount?: unknown }).gpuCount;
    most = Math.max(most, 1, typeof n === 'number' ? n : 0);
  }
  return most;
}

/**
 * The warning shown at submit when a sweep has points of more GPUs than any live worker of the pool owns (while
 * at least one worker is live: with none, noWorkerWarning says more): null when a worker owns enough.
 */
export function gpusWarning(pool: string, wanted: readonly number[], most: number, waitS: number): string | null {
  const short = [...new Set(wanted)].filter((n) => n > most).sort((a, b) => a - b);
  if (most === 0 || short.length === 0) return null;
  return (
    `warning: no live worker of pool ${pool} owns ${short.join(' or ')} GPUs (the most: ${most}): those points end as unsatisfiable ` +
    `${waitS} s after submission (gpus_wait_s) unless one starts (moefarm worker --pool ${pool} --gpus 0,1,…)`
  );
}
