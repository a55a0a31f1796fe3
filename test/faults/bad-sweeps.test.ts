/**
 * Bad input through the real CLI (`node dist/src/cli.js sweep submit FILE`):
 * every file of test/fixtures/bad-sweeps/ names, in its header, the field its
 * refusal must name (`# expect: path`) and a piece of the message
 * (`# message: …`). Each must exit 2 with `FILE: path: …` on stderr, print
 * nothing on stdout, enqueue nothing (a test-owned Redis stays empty), open no
 * database, and run nothing: files that try shell injection would create a
 * marker file if any of their text reached a shell.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, tempDir } from '../helpers/services.js';
import { killAll, OwnedRedis } from './procs.js';
import { execa } from 'execa';

const DIR = join(ROOT, 'test', 'fixtures', 'bad-sweeps');
const MARKER = '/tmp/moefarm-bad-sweep-marker';

interface Case {
  file: string;
  expect: string;
  message: string | null;
  allowLarge: 'ok' | 'refused' | null;
}

function header(text: string, key: string): string | null {
  return new RegExp(`^# ${key}: (.*)$`, 'm').exec(text)?.[1] ?? null;
}

const cases: Case[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((file) => {
    const text = readFileSync(join(DIR, file), 'utf8');
    const expectPath = header(text, 'expect');
    if (expectPath === null) throw new Error(`${file}: no '# expect: field.path' header`);
    const large = /^# allow-large-(ok|refused)$/m.exec(text)?.[1] as Case['allowLarge'] | undefined;
    return { file, expect: expectPath, message: header(text, 'message'), allowLarge: large ?? null };
  });

let redis: OwnedRedis;
const tmp = tempDir('bad-sweeps');
const dbFile = join(tmp.dir, 'never.db');

function submit(file: string, extra: string[] = []) {
  return execa(process.execPath, [CLI, 'sweep', 'submit', file, ...extra], {
    cwd: DIR, // relative file names: the message starts with exactly the name given
    reject: false,
    timeout: 30_000,
    env: { REDIS_URL: redis.url, DATABASE_URL: `file:${dbFile}`, MOEFARM_PREFIX: 'bad-sweeps' },
  });
}

/** Runs `fn` over `items`, `n` at a time (CI has two cores). */
async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const results = new Map<string, { exitCode: number | undefined; stdout: string; stderr: string }>();

beforeAll(async () => {
  rmSync(MARKER, { force: true });
  redis = await OwnedRedis.start({ dir: tmp.dir });
  const rs = await pool(cases, 4, (c) => submit(c.file));
  cases.forEach((c, i) => results.set(c.file, { exitCode: rs[i]!.exitCode, stdout: String(rs[i]!.stdout), stderr: String(rs[i]!.stderr) }));
}, 180_000);

afterAll(async () => {
  await killAll();
  tmp.cleanup();
});

describe('the bad-sweep corpus', () => {
  it('has at least 40 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map((c) => [c.file, c] as const))('%s: exit 2, naming the field', (_name, c) => {
    const r = results.get(c.file)!;
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`moefarm: ${c.file}: ${c.expect}`);
    if (c.message) expect(r.stderr).toContain(c.message);
  });

  it('enqueued nothing, opened no database and ran nothing through a shell', async () => {
    const client = redis.client();
    expect(await client.dbsize()).toBe(0);
    client.disconnect();
    expect(existsSync(dbFile)).toBe(false);
    expect(existsSync(MARKER)).toBe(false);
  });

  it('--allow-large lets a large matrix through, never an astronomical one', async () => {
    for (const c of cases.filter((x) => x.allowLarge)) {
      const r = await submit(c.file, ['--allow-large', '--dry-run', '--json']);
      if (c.allowLarge === 'ok') {
        expect(r.exitCode, String(r.stderr)).toBe(0);
        expect(JSON.parse(String(r.stdout))).toMatchObject({ jobs: 10_000, dryRun: true });
      } else {
        expect(r.exitCode).toBe(2);
        expect(String(r.stderr)).toContain(`${c.file}: ${c.expect}`);
      }
    }
    expect(cases.filter((x) => x.allowLarge).length).toBe(2);
  });
});
