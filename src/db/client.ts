/**
 * The database through Prisma Client with a driver adapter: SQLite (a file,
 * via better-sqlite3) by default, Postgres when DATABASE_URL says so. The two
 * generated clients come from the same models (scripts/prisma-generate.mjs),
 * so they share one API; the Postgres one is typed through the SQLite one.
 */
import { statSync } from 'node:fs';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient as SqliteClient } from '../../generated/prisma/sqlite/client/client.js';
import { PrismaClient as PostgresClient } from '../../generated/prisma/postgres/client/client.js';
import { databaseUrl } from '../config.js';
import { DatabaseMovedError } from './errors.js';
import { assertExistingDatabase, migrate } from './migrate.js';
import { parseDatabaseUrl, type Provider } from './target.js';

export type Db = SqliteClient;

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

/**
 * A multi-row INSERT in the provider's placeholder style ($1 or ?): `INSERT INTO "T" ("a", "b") VALUES
 * (?,?),(?,?)` and the values in order. The placeholders are counted from the column list and every row
 * must hold one value per column, so the list and the values cannot drift apart. The caller appends the
 * rest of the statement (ON CONFLICT …).
 */
export function insertRows<V>(provider: Provider, table: string, columns: readonly string[], rows: ReadonlyArray<readonly V[]>): { sql: string; values: V[] } {
  const n = columns.length;
  const tuples = rows.map((row, r) => {
    if (row.length !== n) throw new Error(`INSERT INTO "${table}": row ${r} has ${row.length} values for ${n} columns (${columns.join(', ')})`);
    return `(${row.map((_, c) => (provider === 'postgres' ? `$${r * n + c + 1}` : '?')).join(',')})`;
  });
  return { sql: `INSERT INTO "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) VALUES ${tuples.join(',')}`, values: rows.flat() };
}

/**
 * insertRows for rows written as objects, each value beside its column's name: the column list is read from
 * the first row's keys, and every row must have exactly those keys, so a column cannot be paired with
 * another's value. At least one row.
 */
export function insertRecords<V>(provider: Provider, table: string, rows: ReadonlyArray<Readonly<Record<string, V>>>): { sql: string; values: V[] } {
  const first = rows[0];
  if (!first) throw new Error(`INSERT INTO "${table}": no rows`);
  const columns = Object.keys(first);
  const tuples = rows.map((row, r) => {
    const keys = Object.keys(row);
    if (keys.length !== columns.length || !keys.every((k) => Object.hasOwn(first, k))) {
      throw new Error(`INSERT INTO "${table}": row ${r} has the columns (${keys.join(', ')}), row 0 (${columns.join(', ')})`);
    }
    return columns.map((c) => row[c] as V);
  });
  return insertRows(provider, table, columns, tuples);
}
