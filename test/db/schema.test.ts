/**
 * The tables are created by hand-kept SQL (prisma/migrations/<provider>/*.sql,
 * applied by src/db/migrate.ts), while the client is generated from
 * prisma/models.prisma: nothing else keeps the two in step. This applies the
 * migrations to a scratch SQLite file and a scratch Postgres database and
 * compares what they made with the models: the tables, each column's type,
 * nullability and default, primary keys, indexes and unique constraints, and
 * foreign keys. A column added to the models and forgotten in one provider's
 * SQL (or the other way round) fails here, not at the first write.
 *
 * models.prisma is read by a small parser (the file holds models only, one
 * field per line); its reading of field names is checked against the
 * generated client's own list of each model's scalar fields, so the parser
 * cannot quietly miss one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Prisma } from '../../generated/prisma/sqlite/client/client.js';
import { migrate } from '../../src/db/migrate.js';
import { bothDatabases, ROOT } from '../helpers/services.js';

type ScalarType = 'String' | 'Int' | 'Float' | 'Boolean' | 'DateTime' | 'Bytes';

interface Column {
  name: string;
  type: ScalarType;
  nullable: boolean;
  /** The default as a comparable text: 'now', or the literal (strings unquoted); null when none. */
  default: string | null;
}

interface Index {
  columns: string[];
  unique: boolean;
}

interface Table {
  columns: Column[];
  primaryKey: string[];
  /** Secondary indexes by name (Prisma's naming: Model_a_b_idx, Model_a_b_key). */
  indexes: Record<string, Index>;
  /** "column -> Table.column". */
  foreignKeys: string[];
}

const SCALARS = new Set(['String', 'Int', 'Float', 'Boolean', 'DateTime', 'Bytes']);

/** models.prisma → the tables it describes. */
function modelTables(text: string): Record<string, Table> {
  const tables: Record<string, Table> = {};
  for (const m of text.matchAll(/^model\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
    const model = m[1]!;
    const t: Table = { columns: [], primaryKey: [], indexes: {}, foreignKeys: [] };
    for (const raw of m[2]!.split('\n')) {
      const line = raw.replace(/\/\/.*$/, '').trim();
      if (line === '') continue;
      const block = /^@@(index|unique|id)\(\[([^\]]+)\]\)$/.exec(line);
      if (block) {
        const columns = block[2]!.split(',').map((c) => c.trim());
        if (block[1] === 'id') {
          t.primaryKey = columns;
          continue;
        }
        t.indexes[`${model}_${columns.join('_')}_${block[1] === 'unique' ? 'key' : 'idx'}`] = { columns, unique: block[1] === 'unique' };
        continue;
      }
      const f = /^(\w+)\s+(\w+)(\[\])?(\?)?\s*(.*)$/.exec(line);
      if (!f) throw new Error(`models.prisma: model ${model}: cannot read the line "${line}"`);
      const [, name, type, list, optional, attrs] = f as unknown as [string, string, ScalarType, string | undefined, string | undefined, string];
      const relation = /@relation\(fields:\s*\[(\w+)\],\s*references:\s*\[(\w+)\][,)]/.exec(attrs);
      if (relation) t.foreignKeys.push(`${relation[1]} -> ${type}.${relation[2]}`);
      if (!SCALARS.has(type) || list) continue; // a relation field: no column of its own
      const def = /@default\(((?:[^()]|\(\))*)\)/.exec(attrs)?.[1] ?? null;
      t.columns.push({ name, type, nullable: optional === '?', default: def === null ? null : def === 'now()' ? 'now' : def.replace(/^"(.*)"$/, '$1') });
      if (/@id\b/.test(attrs)) t.primaryKey.push(name);
      if (/@unique\b/.test(attrs)) t.indexes[`${model}_${name}_key`] = { columns: [name], unique: true };
    }
    tables[model] = t;
  }
  return tables;
}

const sortTable = (t: Table): Table => ({
  columns: [...t.columns].sort((a, b) => a.name.localeCompare(b.name)),
  primaryKey: t.primaryKey,
  indexes: t.indexes,
  foreignKeys: [...t.foreignKeys].sort(),
});

const sortAll = (tables: Record<string, Table>): Record<string, Table> =>
  Object.fromEntries(Object.entries(tables).sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => [k, sortTable(t)]));

/** A SQL default as the models write it: CURRENT_TIMESTAMP is now(), a quoted string loses its quotes and cast. */
function sqlDefault(d: string | null): string | null {
  if (d === null) return null;
  if (/^CURRENT_TIMESTAMP$/i.test(d)) return 'now';
  const quoted = /^'(.*)'(::[\w ]+)?$/.exec(d);
  return quoted ? quoted[1]!.replace(/''/g, "'") : d;
}

const MIGRATIONS_TABLE = '_moefarm_migrations';

const SQLITE_TYPES: Record<string, ScalarType> = { TEXT: 'String', INTEGER: 'Int', REAL: 'Float', BOOLEAN: 'Boolean', DATETIME: 'DateTime', BLOB: 'Bytes' };

function sqliteTables(file: string): Record<string, Table> {
  const db = new Database(file, { readonly: true });
  try {
    const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != ?`).all(MIGRATIONS_TABLE) as Array<{ name: string }>;
    const out: Record<string, Table> = {};
    for (const { name } of names) {
      const cols = db.prepare(`PRAGMA table_info("${name}")`).all() as Array<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>;
      const t: Table = {
        columns: cols.map((c) => {
          const type = SQLITE_TYPES[c.type.toUpperCase()];
          if (!type) throw new Error(`SQLite ${name}.${c.name}: type ${c.type} has no model type`);
          // SQLite lets a PRIMARY KEY column hold NULL unless NOT NULL is written: the migrations write it.
          return { name: c.name, type, nullable: c.notnull === 0, default: sqlDefault(c.dflt_value) };
        }),
        primaryKey: cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name),
        indexes: {},
        foreignKeys: (db.prepare(`PRAGMA foreign_key_list("${name}")`).all() as Array<{ table: string; from: string; to: string }>).map((f) => `${f.from} -> ${f.table}.${f.to}`),
      };
      for (const ix of db.prepare(`PRAGMA index_list("${name}")`).all() as Array<{ name: string; unique: number; origin: string }>) {
        if (ix.origin === 'pk') continue;
        const columns = (db.prepare(`PRAGMA index_info("${ix.name}")`).all() as Array<{ seqno: number; name: string }>).sort((a, b) => a.seqno - b.seqno).map((c) => c.name);
        t.indexes[ix.name] = { columns, unique: ix.unique === 1 };
      }
      out[name] = t;
    }
    return out;
  } finally {
    db.close();
  }
}

const PG_TYPES: Record<string, ScalarType> = { text: 'String', integer: 'Int', 'double precision': 'Float', boolean: 'Boolean', 'timestamp without time zone': 'DateTime', bytea: 'Bytes' };

async function postgresTables(url: string): Promise<Record<string, Table>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const cols = await c.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null }>(
      `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'public' AND table_name != $1 ORDER BY table_name, ordinal_position`,
      [MIGRATIONS_TABLE],
    );
    const out: Record<string, Table> = {};
    for (const r of cols.rows) {
      const t = (out[r.table_name] ??= { columns: [], primaryKey: [], indexes: {}, foreignKeys: [] });
      const type = PG_TYPES[r.data_type];
      if (!type) throw new Error(`Postgres ${r.table_name}.${r.column_name}: type ${r.data_type} has no model type`);
      t.columns.push({ name: r.column_name, type, nullable: r.is_nullable === 'YES', default: sqlDefault(r.column_default) });
    }
    // Every index, the primary key's included, with its columns in order.
    const ix = await c.query<{ table: string; index: string; unique: boolean; primary: boolean; columns: string[] }>(
      `SELECT t.relname AS table, i.relname AS index, x.indisunique AS unique, x.indisprimary AS primary,
              array_agg(a.attname::text ORDER BY k.n) AS columns
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace s ON s.oid = t.relnamespace AND s.nspname = 'public'
         CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE t.relname != $1
        GROUP BY t.relname, i.relname, x.indisunique, x.indisprimary`,
      [MIGRATIONS_TABLE],
    );
    for (const r of ix.rows) {
      const t = out[r.table]!;
      if (r.primary) t.primaryKey = r.columns;
      else t.indexes[r.index] = { columns: r.columns, unique: r.unique };
    }
    const fks = await c.query<{ table: string; column: string; ref_table: string; ref_column: string }>(
      `SELECT kcu.table_name AS table, kcu.column_name AS column, ccu.table_name AS ref_table, ccu.column_name AS ref_column
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
         JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema
        WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'`,
    );
    for (const r of fks.rows) out[r.table]!.foreignKeys.push(`${r.column} -> ${r.ref_table}.${r.ref_column}`);
    return out;
  } finally {
    await c.end();
  }
}

const models = modelTables(readFileSync(join(ROOT, 'prisma', 'models.prisma'), 'utf8'));

describe('prisma/models.prisma as read here', () => {
  it("has exactly the generated client's models and scalar fields", () => {
    const generated = Object.fromEntries(
      Object.values(Prisma.ModelName).map((m) => [m, Object.values((Prisma as unknown as Record<string, Record<string, string>>)[`${m}ScalarFieldEnum`]!).sort()]),
    );
    const parsed = Object.fromEntries(Object.entries(models).map(([m, t]) => [m, t.columns.map((c) => c.name).sort()]));
    expect(parsed).toEqual(generated);
    // And something to compare: every model has a primary key (Annotation's of two columns), types and defaults were read.
    expect(Object.values(models).every((t) => t.primaryKey.length >= 1)).toBe(true);
    expect(models['Annotation']!.primaryKey).toEqual(['sourceHash', 'pointHash']);
    expect(models['Run']!.columns.find((c) => c.name === 'flags')).toEqual({ name: 'flags', type: 'String', nullable: false, default: '' });
    expect(models['Run']!.foreignKeys).toEqual(['sweepId -> Sweep.id']);
  });
});

describe('the SQL migrations make the tables of prisma/models.prisma', () => {
  const dbs = bothDatabases('schema');

  it('on SQLite', async () => {
    const file = join(dbs.dir, 'schema.db');
    await migrate({ provider: 'sqlite', location: file });
    expect(sortAll(sqliteTables(file))).toEqual(sortAll(models));
  });

  it('on Postgres', async () => {
    await migrate({ provider: 'postgres', location: dbs.pgUrl() });
    expect(sortAll(await postgresTables(dbs.pgUrl()))).toEqual(sortAll(models));
  });
});
