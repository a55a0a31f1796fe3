import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshotDir } from '../../src/source/inputs.js';

export const TEST_REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
/** A Postgres role allowed to create databases; each test gets its own database. */
export const TEST_PG_ADMIN_URL = process.env['TEST_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Build cache shared by all tests (the CPU binary is built once). */
export const TEST_CACHE = process.env['MOEFARM_TEST_CACHE'] ?? join(tmpdir(), 'moefarm-test-cache');

/**
 * A build folder in the test cache for the csrc/ folder given, one per source hash: make decides by timestamps,
 * so a folder shared by several checkouts of the project (the cache is one per host) would keep objects compiled
 * from another checkout's sources.
 */
export function csrcBuildDir(csrc: string, ...parts: string[]): string {
  return join(TEST_CACHE, ...parts.slice(0, 1), snapshotDir(csrc).hash.slice(0, 16), ...parts.slice(1));
}
