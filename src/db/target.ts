/**
 * Which database DATABASE_URL names: the provider and where it is. Both the
 * client (db/client.ts) and the migrator (db/migrate.ts) read it; it lives
 * apart from both so neither imports the other for it.
 */
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';

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
