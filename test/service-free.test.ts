/**
 * The files CI's second job leaves out (vitest.config.ts, SERVICE_FREE) must
 * really reach no service: none of them may name the helpers or clients that
 * start or reach Redis, Postgres, the database or Chromium. If one starts to,
 * this fails and names it, so it leaves the list rather than silently losing
 * its run against the machine's own services.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICE_FREE } from '../vitest.config.js';
import { ROOT } from './helpers/services.js';

// What a test file uses to reach a service (test helpers, clients, URLs); `ROOT`/`tempDir` from helpers/services are
// plain paths and allowed.
const SERVICE_MARKS = /TEST_REDIS_URL|TEST_PG_ADMIN_URL|freshPostgres|startFarm|farmFor|\brig\(|openDb|ioredis|\bRedis\b|bullmq|sqliteUrl|helpers\/browser|chromium|DATABASE_URL|REDIS_URL|runCli|startWorker|startCollector/i;

/** The files a SERVICE_FREE entry names: a path, or `dir/*.test.ts`. */
function filesOf(entry: string): string[] {
  if (!entry.includes('*')) return [entry];
  const dir = entry.slice(0, entry.lastIndexOf('/'));
  const suffix = entry.slice(entry.lastIndexOf('*') + 1);
  return readdirSync(join(ROOT, dir)).filter((f) => f.endsWith(suffix)).map((f) => `${dir}/${f}`);
}

describe('the service-free list of CI job 2', () => {
  it('names files that exist and reach no service', () => {
    const offenders: string[] = [];
    for (const entry of SERVICE_FREE) {
      const matched = filesOf(entry);
      expect(matched.length, entry).toBeGreaterThan(0);
      for (const f of matched) {
        expect(existsSync(join(ROOT, f)), `${entry}: ${f}`).toBe(true);
        const mark = SERVICE_MARKS.exec(readFileSync(join(ROOT, f), 'utf8'));
        if (mark) offenders.push(`${f}: ${mark[0]}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('would catch a file that reaches a service', () => {
    expect(SERVICE_MARKS.test(`import { startFarm } from './helpers/farm.js';`)).toBe(true);
    expect(SERVICE_MARKS.test(`const r = await rig('x');`)).toBe(true);
    expect(SERVICE_MARKS.test(`import { ROOT, tempDir } from './helpers/services.js';`)).toBe(false);
  });
});
