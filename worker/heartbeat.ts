/**
 * The worker's heartbeat in Redis: a live key with a short expiry, refreshed
 * every few seconds, plus a lasting snapshot in a hash, so `moefarm workers`
 * can show live workers and those gone silent.
 */
import type { Redis } from 'ioredis';
import { queuePrefix } from '../src/config.js';

/** A heartbeat every 5 s; a worker whose live key (20 s) lapsed is shown as silent. Tests shorten both. */
export const HEARTBEAT_TTL_S = Number(process.env['MOEFARM_HEARTBEAT_TTL_S'] ?? 20);
export const HEARTBEAT_EVERY_MS = Math.max(200, Math.floor((HEARTBEAT_TTL_S * 1000) / 4));

export function workersHashKey(prefix = queuePrefix()): string {
  return `${prefix}:workers`;
}
export function workerLiveKey(id: string, prefix = queuePrefix()): string {
  return `${prefix}:worker-alive:${id}`;
}

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
