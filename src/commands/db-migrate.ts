import { databaseUrl } from '../config.js';
import { parseDatabaseUrl } from '../db/target.js';
import { migrate } from '../db/migrate.js';

export async function dbMigrate(): Promise<void> {
  const target = parseDatabaseUrl(databaseUrl());
  const applied = await migrate(target);
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
}
