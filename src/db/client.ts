/**
 * The database through Prisma Client with a driver adapter: SQLite (a file,
 * via better-sqlite3) by default, Postgres when DATABASE_URL says so. The two
 * generated clients come from the same models (scripts/prisma-generate.mjs),
 * so they share one API; the Postgres one is typed through the SQLite one.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient as SqliteClient } from '../../generated/prisma/sqlite/client/client.js';
import { PrismaClient as PostgresClient } from '../../generated/prisma/postgres/client/client.js';
import { databaseUrl } from '../config.js';
import { UsageError } from '../errors.js';
import { DatabaseMovedError } from './errors.js';
import { assertExistingDatabase, migrate } from './migrate.js';

export type Db = SqliteClient;
export type Provider = 'sqlite' | 'postgres';

export interface DbTarget {
  provider: Provider;
  /** SQLite: absolute file path. Postgres: the connection string. */
  location: string;
}

export function parseDatabaseUrl(url: string): DbTarget {
  if (/^postgres(ql)?:\/\//.test(url)) return { provider: 'postgres', location: url };
  if (url.startsWith('file:')) {
    const path = url.slice('file:'.length).replace(/^\/\//, '');
    if (path === '') throw new UsageError(`DATABASE_URL: expected file:PATH or postgres://…, got "${url}"`);
    return { provider: 'sqlite', location: resolve(path) };
  }
  throw new UsageError(`DATABASE_URL: expected file:PATH (SQLite) or postgres://… (Postgres), got a URL with another scheme`);
}

export interface OpenOptions {
  url?: string;
  /** Create or upgrade the tables first (default true). */
  migrate?: boolean;
  /** Refuse (exit 2, naming DATABASE_URL) unless the database exists and is moefarm's: for commands that only read. */
  mustExist?: boolean;
}

const providers = new WeakMap<Db, Provider>();

/** SQLite: the file a client opened, as (device, inode) at open time. */
const sqliteFiles = new WeakMap<Db, { path: string; dev: number; ino: number }>();

export const SQLITE_BUSY_TIMEOUT_MS = 1000;

/** Which database a client talks to: raw SQL differs in its placeholders ($1 or ?). */
export function providerOf(db: Db): Provider {
  return providers.get(db) ?? 'sqlite';
}

export async function openDb(opts: OpenOptions = {}): Promise<Db> {
  const url = opts.url ?? databaseUrl();
  const target = parseDatabaseUrl(url);
  if (opts.mustExist) await assertExistingDatabase(target, url);
  if (opts.migrate !== false) await migrate(target);
  let db: Db;
  if (target.provider === 'sqlite') {
    // Busy timeout: a writer waits this long for another's lock, then fails and the caller retries (the
    // collector through the queue's backoff). Short on purpose: better-sqlite3 is synchronous, so the wait
    // blocks the event loop (queue locks, heartbeats) for as long as it lasts.
    db = new SqliteClient({ adapter: new PrismaBetterSqlite3({ url: target.location, timeout: SQLITE_BUSY_TIMEOUT_MS }) });
    // The file exists (the migrator made it, or it was there): its identity now is the one this client opens.
    const st = statSync(target.location, { throwIfNoEntry: false });
    if (st) sqliteFiles.set(db, { path: target.location, dev: st.dev, ino: st.ino });
  } else {
    db = new PostgresClient({ adapter: new PrismaPg({ connectionString: target.location, max: 4 }) }) as unknown as Db;
  }
  providers.set(db, target.provider);
  return db;
}

/**
 * SQLite: throws DatabaseMovedError unless the path still names the file this client opened. A file deleted
 * or replaced while `moefarm serve` ran was written on as if nothing happened (the open handle keeps the old
 * inode), every result acknowledged and lost; the collector calls this inside each transaction, before it
 * commits, so such a result is never acknowledged. A stat, a few microseconds. Postgres: nothing to check.
 */
export function assertSameDatabase(db: Db): void {
  const opened = sqliteFiles.get(db);
  if (!opened) return;
  const now = statSync(opened.path, { throwIfNoEntry: false });
  if (!now) throw new DatabaseMovedError(`${opened.path}: the SQLite database file was deleted while this process had it open; nothing more is written to it (the results not yet written stay in Redis)`);
  if (now.dev !== opened.dev || now.ino !== opened.ino) {
    throw new DatabaseMovedError(`${opened.path}: the SQLite database file was replaced by another file while this process had it open; nothing more is written to it (the results not yet written stay in Redis)`);
  }
}

/** `count` rows of `columns` placeholders for a multi-row INSERT, in the provider's style. */
export function valuesPlaceholders(provider: Provider, count: number, columns: number): string {
  const rows: string[] = [];
  for (let r = 0; r < count; r++) {
    const cells = Array.from({ length: columns }, (_, c) => (provider === 'postgres' ? `$${r * columns + c + 1}` : '?'));
    rows.push(`(${cells.join(',')})`);
  }
  return rows.join(',');
}
