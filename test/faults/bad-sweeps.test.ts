/**
 * Bad input through the real CLI (`node dist/src/cli.js sweep submit FILE`):
 * every file of test/fixtures/bad-sweeps/ names, in its header, the field its
 * refusal must name (`# expect: path`) and a piece of the message
 * (`# message: …`). Each must exit 2 with `FILE: path: …` on stderr, print
 * nothing on stdout, enqueue nothing (a test-owned Redis stays empty), open no
 * database, and run nothing: files that try shell injection would create a
 * marker file if any of their text reached a shell.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, tempDir } from '../helpers/services.js';
import { killAll, OwnedRedis, report } from './procs.js';
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

/** A case file's text in its own encoding (the corpus holds gzip, UTF-16 and UTF-32 files too), for its header. */
function caseText(bytes: Buffer): string {
  return decodeCase(bytes).replace(/^\ufeff/, '');
}

function decodeCase(bytes: Buffer): string {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return gunzipSync(bytes).toString('latin1');
  if (bytes[0] === 0xff && bytes[1] === 0xfe && bytes[2] === 0 && bytes[3] === 0) return String.fromCodePoint(...Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readUInt32LE(i * 4)));
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || bytes[1] === 0) return bytes.toString('utf16le');
  return bytes.toString('latin1');
}

/** Raw terminal controls (tab and newline aside): none may reach the user's terminal, whatever the file held. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

const cases: Case[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((file) => {
    const text = caseText(readFileSync(join(DIR, file)));
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
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stderr.length).toBeLessThan(4000); // bounded: 2,000 unknown keys are named 5 at a time
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
    expect(cases.filter((x) => x.allowLarge).length).toBe(3);
  });
});

describe('refusals that need the meaning of the sweep, one at a time', () => {
  // The classes found by submitting a corpus held back from this project's (each accepted with exit 0 before):
  // duplicate axis values, GPU-only settings on the CPU backend, exclude rules that match nothing, a baseline
  // excluded everywhere, weights no GPU holds, the binary's own limits, escaped control characters, a shape
  // field beside a preset. Each must be refused in under 2 s even alone on a loaded machine.
  const semantic = cases.filter((c) => Number(/^(\d+)-/.exec(c.file)?.[1]) >= 96);

  it('covers every class with a case of its own', () => {
    expect(semantic.length).toBeGreaterThanOrEqual(24);
  });

  it.each(semantic.map((c) => [c.file, c] as const))('%s: exit 2 in under 2 s', async (_name, c) => {
    const t0 = performance.now();
    const r = await submit(c.file);
    const ms = performance.now() - t0;
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(String(r.stderr)).toContain(`moefarm: ${c.file}: ${c.expect}`);
    expect(ms).toBeLessThan(2000);
    report(`semantic ${c.file}`, { exit: r.exitCode, ms: Math.round(ms) });
  });
});

describe('paths that are not sweep files, and files too large to read', () => {
  const dir = join(tmp.dir, 'special');

  beforeAll(async () => {
    mkdirSync(join(dir, 'a-directory.yaml'), { recursive: true });
    await execa('mkfifo', [join(dir, 'fifo.yaml')]);
    symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
    symlinkSync('/dev/urandom', join(dir, 'urandom.yaml'));
    // 64 MiB, sparse: larger than the cap, refused from its size before a byte is read.
    writeFileSync(join(dir, 'huge.yaml'), 'name: ok\n');
    truncateSync(join(dir, 'huge.yaml'), 64 << 20);
    // 20,000 unknown keys (about 0.5 MB): the yaml package's pairwise duplicate-key check took seconds on these,
    // and its parser alone needs about a second; counted before parsing.
    const keys = Array.from({ length: 20_000 }, (_, i) => `unknown_key_${i}: ${i}`).join('\n');
    writeFileSync(join(dir, 'keys.yaml'), `name: ok\npool: ok\nmatrix:\n  variant: [reference]\n  model: tiny\n${keys}\n`);
    // One flow list of 100,000 items on one line (0.5 MB).
    writeFileSync(join(dir, 'list.yaml'), `name: ok\npool: ok\nmatrix:\n  variant: [reference]\n  model: tiny\n  tokens: [${Array(100_000).fill(1).join(', ')}]\n`);
  });

  const special: Array<[string, string]> = [
    ['fifo.yaml', '(file): not a regular file but a FIFO (named pipe)'],
    ['a-directory.yaml', '(file): not a regular file but a directory'],
    ['zero.yaml', '(file): not a regular file but a character device'],
    ['urandom.yaml', '(file): not a regular file but a character device'],
    ['huge.yaml', '(file): 67108864 bytes, larger than the 1048576-byte limit'],
    ['keys.yaml', '(file): more than 10000 lines and list items (20006 lines)'],
    ['list.yaml', '(file): more than 10000 lines and list items'],
  ];

  it.each(special)('%s: exit 2 at once, naming the problem', async (file, message) => {
    const t0 = performance.now();
    const r = await execa(process.execPath, [CLI, 'sweep', 'submit', file], {
      cwd: dir,
      reject: false,
      timeout: 30_000, // a FIFO used to block for ever: this would end it, and fail the test
      env: { REDIS_URL: redis.url, DATABASE_URL: `file:${dbFile}`, MOEFARM_PREFIX: 'bad-sweeps' },
    });
    const ms = performance.now() - t0;
    expect(r.timedOut).toBe(false);
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(String(r.stderr)).toContain(`moefarm: ${file}: ${message}`);
    expect(String(r.stderr).length).toBeLessThan(1000);
    report(`bad path ${file}`, { exit: r.exitCode, ms: Math.round(ms) });
  });
});
