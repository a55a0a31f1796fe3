/**
 * Migration 008 on a database that holds results: the statistics nothing read are dropped, the rest of
 * every row is kept as it was, and a relative error stored as -1 (the old "none measured") becomes NULL.
 * The database is brought to 007 by the migration files themselves, recorded as applied the way
 * src/db/migrate.ts records them, so migrate() applies 008 alone.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.js';
import { bothDatabases, ROOT } from '../helpers/services.js';

const MIGRATIONS_TABLE = '_moefarm_migrations';
const before008 = (provider: 'sqlite' | 'postgres') => {
  const dir = join(ROOT, 'prisma', 'migrations', provider);
  return readdirSync(dir).filter((f) => f.endsWith('.sql') && f < '008').sort().map((name) => ({ name, sql: readFileSync(join(dir, name), 'utf8') }));
};

const SEED = [
  `INSERT INTO "Sweep" ("id", "name", "pool", "spec", "points", "runs") VALUES ('s', 'n', 'p', '{}', 1, 1)`,
  `INSERT INTO "Run" ("id", "sweepId", "groupHash", "rep", "pool", "params", "status") VALUES ('r', 's', 'g', 0, 'p', '[]', 'done')`,
];
const result = (id: string, variant: string, relErr: number) =>
  `INSERT INTO "Result" ("id", "runId", "variant", "pointHash", "n", "median", "p10", "p90", "mean", "min", "max", "stdev", "bytesPerIter", "checkPass", "relErr", "samplesUs", "rounds", "sourceHash", "tune")
   VALUES ('${id}', 'r', '${variant}', 'h', 2, 1.5, 1.1, 1.9, 1.5, 1, 2, 0.7, 64, true, ${relErr}, '[1,2]', '[0,0]', 'src', '')`;

const KEPT = { id: 'r/a', runId: 'r', build: 'default', variant: 'a', pointHash: 'h', n: 2, median: 1.5, p10: 1.1, p90: 1.9, bytesPerIter: 64, samplesUs: '[1,2]', rounds: '[0,0]', sourceHash: 'src', tune: '' };
const DROPPED = ['mean', 'min', 'max', 'stdev'];

describe('migration 008', () => {
  const dbs = bothDatabases('migrate-008');

  it('on SQLite', async () => {
    const file = join(dbs.dir, 'old.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE "${MIGRATIONS_TABLE}" (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`);
    for (const m of before008('sqlite')) {
      db.exec(m.sql);
      db.prepare(`INSERT INTO "${MIGRATIONS_TABLE}" (name, applied_at) VALUES (?, ?)`).run(m.name, new Date().toISOString());
    }
    for (const sql of [...SEED, result('r/a', 'a', -1), result('r/b', 'b', 0.01)]) db.exec(sql);
    db.close();

    expect(await migrate({ provider: 'sqlite', location: file })).toContain('008_result_samples_once.sql');
    const after = new Database(file, { readonly: true });
    const rows = after.prepare(`SELECT * FROM "Result" ORDER BY "id"`).all() as Array<Record<string, unknown>>;
    after.close();
    expect(rows[0]).toMatchObject({ ...KEPT, checkPass: 1, relErr: null });
    expect(rows[1]).toMatchObject({ id: 'r/b', variant: 'b', relErr: 0.01 });
    for (const c of DROPPED) expect(rows[0]).not.toHaveProperty(c);
  });

  it('on Postgres', async () => {
    const c = new pg.Client({ connectionString: dbs.pgUrl() });
    await c.connect();
    try {
      await c.query(`CREATE TABLE "${MIGRATIONS_TABLE}" (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`);
      for (const m of before008('postgres')) {
        await c.query(m.sql);
        await c.query(`INSERT INTO "${MIGRATIONS_TABLE}" (name, applied_at) VALUES ($1, now())`, [m.name]);
      }
      for (const sql of [...SEED, result('r/a', 'a', -1), result('r/b', 'b', 0.01)]) await c.query(sql);
    } finally {
      await c.end();
    }

    expect(await migrate({ provider: 'postgres', location: dbs.pgUrl() })).toContain('008_result_samples_once.sql');
    const after = new pg.Client({ connectionString: dbs.pgUrl() });
    await after.connect();
    try {
      const rows = (await after.query<Record<string, unknown>>(`SELECT * FROM "Result" ORDER BY "id"`)).rows;
      expect(rows[0]).toMatchObject({ ...KEPT, checkPass: true, relErr: null });
      expect(rows[1]).toMatchObject({ id: 'r/b', variant: 'b', relErr: 0.01 });
      for (const c of DROPPED) expect(rows[0]).not.toHaveProperty(c);
    } finally {
      await after.end();
    }
  });
});
