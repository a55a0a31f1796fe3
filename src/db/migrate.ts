/**
 * Schema migrations: numbered SQL files per provider in prisma/migrations/,
 * applied in order, each once, inside a transaction, recorded in
 * _moefarm_migrations. Plain SQL through the drivers (better-sqlite3, pg)
 * rather than `prisma migrate`, whose native schema engine must be downloaded
 * from Prisma's host and so is not available where only the npm registry is.
 */
import { readdirSync, readFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { projectRoot } from '../config.js';
import { ServiceError, UsageError } from '../errors.js';
import { redactText } from '../util/redact.js';
import type { DbTarget } from './client.js';

const TABLE = '_moefarm_migrations';

interface Migration {
  name: string;
  sql: string;
}

function migrations(provider: DbTarget['provider']): Migration[] {
  const dir = join(projectRoot, 'prisma', 'migrations', provider);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((name) => ({ name, sql: readFileSync(join(dir, name), 'utf8') }));
}

/**
 * For commands that only read (or act on sweeps already recorded): the database must exist and be one of
 * moefarm's (its migrations table), else a usage error naming DATABASE_URL (exit 2). Without this check a
 * mistyped path created an empty SQLite file, and the command answered "no such sweep" from it.
 */
export async function assertExistingDatabase(target: DbTarget, url: string): Promise<void> {
  const hint = 'this command reads an existing database and creates none: check DATABASE_URL (moefarm sweep submit or moefarm serve create one)';
  if (target.provider === 'sqlite') {
    const st = statSync(target.location, { throwIfNoEntry: false });
    if (!st) throw new UsageError(`DATABASE_URL: ${target.location}: no such SQLite database file; ${hint}`);
    if (!st.isFile()) throw new UsageError(`DATABASE_URL: ${target.location}: not a regular file; ${hint}`);
    let ours = false;
    try {
      const db = new Database(target.location, { readonly: true, fileMustExist: true, timeout: 10_000 });
      try {
        ours = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(TABLE) !== undefined;
      } finally {
        db.close();
      }
    } catch (err) {
      throw new UsageError(`DATABASE_URL: ${target.location}: not a SQLite database (${(err as Error).message}); ${hint}`);
    }
    if (!ours) throw new UsageError(`DATABASE_URL: ${target.location}: a SQLite file, but not a moefarm database (no ${TABLE} table); ${hint}`);
    return;
  }
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (err) {
    // 3D000: the server is there, the database named in the URL is not.
    if ((err as { code?: string }).code === '3D000') throw new UsageError(`DATABASE_URL: ${redactText(url)}: ${redactText((err as Error).message)}; ${hint}`);
    throw new ServiceError(`cannot reach Postgres at DATABASE_URL (${redactText((err as Error).message)})`);
  }
  try {
    const r = await client.query<{ t: string | null }>(`SELECT to_regclass('"${TABLE}"')::text AS t`);
    if (r.rows[0]?.t == null) throw new UsageError(`DATABASE_URL: ${redactText(url)}: a Postgres database, but not a moefarm one (no ${TABLE} table); ${hint}`);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Apply pending migrations; returns the names applied now. Safe to run from several processes at once. */
export async function migrate(target: DbTarget): Promise<string[]> {
  return target.provider === 'sqlite' ? migrateSqlite(target.location) : migratePostgres(target.location);
}

function migrateSqlite(file: string): string[] {
  mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file, { timeout: 10_000 });
  try {
    // WAL: readers (compare, report) do not block the collector's writes. Switching needs an exclusive
    // lock that the busy timeout does not wait for, so only switch when needed, and wait for it by hand.
    if (String(db.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') retryBusy(() => db.pragma('journal_mode = WAL'));
    db.exec(`CREATE TABLE IF NOT EXISTS "${TABLE}" (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`);
    const applied: string[] = [];
    for (const m of migrations('sqlite')) {
      // IMMEDIATE takes the write lock first, so two processes cannot both apply one migration.
      const apply = db.transaction(() => {
        const done = db.prepare(`SELECT 1 FROM "${TABLE}" WHERE name = ?`).get(m.name);
        if (done) return false;
        db.exec(m.sql);
        db.prepare(`INSERT INTO "${TABLE}" (name, applied_at) VALUES (?, ?)`).run(m.name, new Date().toISOString());
        return true;
      });
      if (retryBusy(() => apply.immediate())) applied.push(m.name);
    }
    return applied;
  } finally {
    db.close();
  }
}

/** SQLite can answer SQLITE_BUSY without waiting (lock upgrades, journal mode): retry for up to 30 s. */
function retryBusy<T>(fn: () => T, deadlineMs = 30_000): T {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if ((code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') || Date.now() > until) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

async function migratePostgres(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (err) {
    throw new ServiceError(`cannot reach Postgres at DATABASE_URL (${redactText((err as Error).message)})`);
  }
  const applied: string[] = [];
  try {
    await client.query('BEGIN');
    // One migrator at a time across processes.
    await client.query('SELECT pg_advisory_xact_lock(72677901)');
    await client.query(`CREATE TABLE IF NOT EXISTS "${TABLE}" (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`);
    const done = new Set((await client.query<{ name: string }>(`SELECT name FROM "${TABLE}"`)).rows.map((r) => r.name));
    for (const m of migrations('postgres')) {
      if (done.has(m.name)) continue;
      await client.query(m.sql);
      await client.query(`INSERT INTO "${TABLE}" (name, applied_at) VALUES ($1, now())`, [m.name]);
      applied.push(m.name);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}
