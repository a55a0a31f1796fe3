/**
 * Redis connections for BullMQ. `redis://:password@host`, `rediss://` (TLS)
 * and database numbers in the URL all work, since ioredis reads them; the URL
 * is never logged with its password.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { redisUrl } from '../config.js';
import { ServiceError } from '../errors.js';
import { redactUrl } from '../util/redact.js';

export function createRedis(url = redisUrl(), extra: RedisOptions = {}): Redis {
  // BullMQ workers block on Redis; it requires maxRetriesPerRequest: null.
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false, ...extra });
}

/** What a probe of a Redis URL found. `nothingListens`: the connection was refused, so no server is there at all. */
export type RedisProbe = { ok: true } | { ok: false; error: Error; nothingListens: boolean };

/** Connects once and PINGs, within `timeoutMs` in all. */
export async function probeRedis(url = redisUrl(), timeoutMs = 3000): Promise<RedisProbe> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  // connect() rejects with "Connection is closed."; the cause (ECONNREFUSED, …) comes as an 'error' event.
  let cause: (Error & { code?: string }) | undefined;
  probe.on('error', (e: Error) => (cause ??= e));
  let timer: NodeJS.Timeout | undefined;
  try {
    // The whole probe has a deadline, not only the TCP connect: a server that accepts the connection and never
    // answers (a TLS-only port spoken to in plain text, a stuck proxy) must not hang the command.
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([probe.connect().then(() => probe.ping()), deadline]);
    return { ok: true };
  } catch (err) {
    const error = cause ?? (err as Error);
    const code = (error as { code?: string }).code;
    return { ok: false, error, nothingListens: code === 'ECONNREFUSED' || code === 'ENOENT' };
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
}

/** Fail fast, with the fix, when nothing answers at the Redis URL. */
export async function assertRedisReachable(url = redisUrl(), timeoutMs = 3000): Promise<void> {
  const p = await probeRedis(url, timeoutMs);
  if (!p.ok) {
    throw new ServiceError(
      `cannot reach Redis at ${redactUrl(url)} (${p.error.message}).\n` +
        'Start one with `docker compose up -d redis` or `redis-server --daemonize yes`, or set REDIS_URL.',
    );
  }
}
