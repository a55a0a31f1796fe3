/**
 * Real services for tests: a fresh Redis key prefix, a fresh SQLite file or a
 * fresh Postgres database per test, the real CLI as a child process.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { createScratchPostgres } from '../../src/db/scratch.js';
import { TEST_CACHE, TEST_PG_ADMIN_URL, TEST_REDIS_URL } from './env.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli.js');

/** Points this process's queues at a key prefix of its own; returns a cleanup that deletes its keys. */
export function freshPrefix(): { prefix: string; cleanup: () => Promise<void> } {
  const prefix = `test-${randomUUID().slice(0, 8)}`;
  process.env['MOEFARM_PREFIX'] = prefix;
  process.env['REDIS_URL'] = TEST_REDIS_URL;
  process.env['MOEFARM_CACHE'] = TEST_CACHE;
  return {
    prefix,
    cleanup: async () => {
      const r = new Redis(TEST_REDIS_URL);
      try {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await r.del(...keys);
        } while (cursor !== '0');
      } finally {
        r.disconnect();
      }
    },
  };
}

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `moefarm-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * What most farm tests start from: a fresh key prefix and a temporary folder, their cleanups pushed onto
 * the test's `cleanups` (run in reverse: the folder goes first, then the keys).
 */
export function scratch(tag: string, cleanups: Array<() => unknown>): { prefix: string; dir: string } {
  const p = freshPrefix();
  cleanups.push(p.cleanup);
  const t = tempDir(tag);
  cleanups.push(t.cleanup);
  return { prefix: p.prefix, dir: t.dir };
}

export function sqliteUrl(dir: string): string {
  return `file:${join(dir, 'test.db')}`;
}

/** A new, empty Postgres database; drop() removes it. */
export function freshPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  return createScratchPostgres(TEST_PG_ADMIN_URL, 'moefarm_test');
}

export interface CliResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/) as a user would. */
export async function cli(args: string[], env: Record<string, string> = {}, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    cwd: ROOT,
    timeout: opts.timeoutMs ?? 120_000,
    env: {
      REDIS_URL: TEST_REDIS_URL,
      MOEFARM_CACHE: TEST_CACHE,
      MOEFARM_PREFIX: process.env['MOEFARM_PREFIX'] ?? 'test-unset',
      ...env,
    },
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * For a describe block that checks one thing on both databases: a scratch folder for SQLite files and a fresh
 * Postgres database, made before its tests and removed after them. `pgUrl()` is valid inside the tests.
 */
export function bothDatabases(tag: string): { dir: string; pgUrl: () => string } {
  const tmp = tempDir(tag);
  let pgDb: { url: string; drop: () => Promise<void> } | null = null;
  beforeAll(async () => {
    pgDb = await freshPostgres();
  });
  afterAll(async () => {
    await pgDb?.drop();
    tmp.cleanup();
  });
  return { dir: tmp.dir, pgUrl: () => pgDb!.url };
}
