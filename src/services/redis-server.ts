/**
 * A private Redis for a machine where none is running: `redis-server` from
 * PATH, on a spare port of 127.0.0.1, keeping nothing on disk, in a temporary
 * folder; stopped (and the folder removed) when its owner stops it or ends.
 * The demo uses it when nothing answers at REDIS_URL, and so do the tests.
 */
import { accessSync, constants, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ServiceError } from '../errors.js';
import { probeRedis } from '../queue/connection.js';
import { redactUrl } from '../util/redact.js';
import { spawnTethered, type Tethered } from './tether.js';

export const REDIS_INSTALL_HINT =
  'install one: `apt-get install redis-server` (Debian, Ubuntu), `dnf install redis` (Fedora), `brew install redis` (macOS); ' +
  'or set REDIS_URL to a Redis that is running';

/** An executable named `name` on PATH, or null. */
export function findOnPath(name: string, path = process.env['PATH'] ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** `redis-server` on PATH; a ServiceError that says how to get one when there is none. */
export function redisServerBinary(): string {
  const bin = findOnPath('redis-server');
  if (!bin) throw new ServiceError(`redis-server was not found on PATH: ${REDIS_INSTALL_HINT}`);
  return bin;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function spareLocalPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** Its folder (removed once it has stopped). */
  dir: string;
  /** Stops the server and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const bin = redisServerBinary();
  // Between choosing the port and Redis binding it another process may take it: then try another.
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'moefarm-redis-'));
    const port = await spareLocalPort();
    const server: Tethered = spawnTethered(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction', '--daemonize', 'no'],
      { stopSignal: 'SIGTERM', graceMs: 5000, removeDir: dir },
    );
    try {
      await server.waitFor(/Ready to accept connections/, 15_000);
    } catch (err) {
      await server.stop();
      if (attempt < 3 && /Address already in use/i.test(server.output())) continue;
      throw new ServiceError(`could not start a private redis-server (${bin}): ${(err as Error).message}`);
    }
    return { url: `redis://127.0.0.1:${port}`, port, dir, stop: () => server.stop() };
  }
}

/**
 * The Redis at `url` when one answers there; when nothing listens at all
 * (connection refused), a private one. Any other failure (a wrong password,
 * TLS, a server that does not answer) is the user's to fix: a ServiceError.
 */
export async function redisOrPrivate(url: string): Promise<{ url: string; private: PrivateRedis | null }> {
  const probe = await probeRedis(url);
  if (probe.ok) return { url, private: null };
  if (!probe.nothingListens) throw new ServiceError(`cannot use Redis at ${redactUrl(url)}: ${probe.error.message}`);
  const started = await startPrivateRedis();
  return { url: started.url, private: started };
}
