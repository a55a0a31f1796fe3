/**
 * The notifier on history steps, in this process with its real analysis
 * thread, real Redis (the once-only claims) and a real HTTP receiver: a
 * point measured with three runs per build, then a build 30% slower with
 * three runs: one digest message naming that build, confirmed by the
 * run-level rule, and not sent again when the sweep finishes again. A build
 * measured with one run only (a single noisy run) is no step in history (its
 * run-level rule needs 2 runs a side) and is not sent; annotated invalid, it
 * is left out; a step annotated expected
 * is not sent until the note is cleared. The results are written by
 * the collector's own write (test/results/synth.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/db/client.js';
import { loadHistory } from '../../src/results/history.js';
import { Notifier } from '../../src/notify/notifier.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { cli, scratch, sqliteUrl, waitFor } from '../helpers/services.js';
import { runSamples, seeded } from '../helpers/latencies.js';
import { plannedSweep, record, sweepYaml } from '../results/synth.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function sweepOf(db: Db, name: string, src: string, fused: number, repeat: number, at: number): Promise<string> {
  const plan = await plannedSweep(db, sweepYaml({ name, repeat }));
  const r = seeded(at % 1000);
  for (const run of plan.runs) {
    const v = run.points[0]!.point.variant;
    await record(db, plan, run, { results: [{ variant: v, samples: runSamples(r, 60, v === 'fused' ? fused : 100, 0.003, 0.01) }], sourceHash: src, gitCommit: null, finishedAt: at + run.rep * 1000 });
  }
  return plan.sweepId;
}

describe('serve --notify usage', () => {
  it('refuses a webhook that is not http(s), and --notify-digest alone, before starting', async () => {
    for (const [args, message] of [
      [['--notify', 'ftp://hooks.example.com/x'], /expected an http:\/\/ or https:\/\/ URL, got a ftp: URL/],
      [['--notify', 'not a url'], /expected an http:\/\/ or https:\/\/ URL/],
      [['--notify-digest'], /--notify-digest needs --notify URL/],
    ] as const) {
      const r = await cli(['serve', ...args], { REDIS_URL: 'redis://127.0.0.1:1' });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('serve --notify on history steps', () => {
  it('sends a confirmed step once, as a digest; not a single-run step, not an annotated one', async () => {
    const fresh = scratch('notify', cleanups);
    const dbUrl = sqliteUrl(fresh.dir);
    const db = await openDb({ url: dbUrl });
    cleanups.push(() => db.$disconnect());
    const got: Array<{ event: string; count: number; regressions: Array<{ kind: string; variant: string; build: { sourceHash: string }; against: { sourceHash: string }; slowerPct: number; reason: string }>; text: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        got.push(JSON.parse(body) as (typeof got)[number]);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r(undefined))));
    const redis = new Redis(TEST_REDIS_URL);
    cleanups.push(() => redis.disconnect());
    const lines: string[] = [];
    const log = { info: (_f: object, m: string) => lines.push(m), warn: (_f: object, m: string) => lines.push(m), error: (_f: object, m: string) => lines.push(m) };
    const notifier = new Notifier({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/digest`, digest: true, dbUrl, redis, log, backoffMs: 100 });
    cleanups.push(() => notifier.close());

    const t0 = Date.parse('2026-11-20T10:00:00Z');
    await sweepOf(db, 'before', 'aaaaaaaa1111', 100, 3, t0);
    const slow = await sweepOf(db, 'after', 'bbbbbbbb2222', 130, 3, t0 + 3_600_000);
    notifier.sweepFinished(slow);
    await waitFor('the digest', async () => (got.length ? true : null), 30_000);
    expect(got[0]).toMatchObject({ event: 'regressions', count: 1 });
    expect(got[0]!.regressions[0]).toMatchObject({ kind: 'history', variant: 'fused', build: { sourceHash: 'bbbbbbbb2222' }, against: { sourceHash: 'aaaaaaaa1111' } });
    expect(got[0]!.regressions[0]!.slowerPct).toBeGreaterThan(25);
    expect(got[0]!.regressions[0]!.reason).toMatch(/confirmed over 3\+3 runs/);
    expect(got[0]!.text).toMatch(/^moefarm: 1 regression\(s\) in sweep \w+ \(after\):\n- tiny T=1 bf16 .*fused: build bbbbbbbb2222 vs the build before it 3\d\.\d% slower/);

    // The same sweep finishing again (more runs of it, a second collector): nothing new is sent.
    notifier.sweepFinished(slow);
    await sleep(1500);
    expect(got).toHaveLength(1);

    // One run of a build 60% slower: history's run-level rule needs 2 runs a side, so no step, and nothing is sent.
    const single = await sweepOf(db, 'single', 'cccccccc3333', 160, 1, t0 + 7_200_000);
    const h = await loadHistory(db, { pointHashes: [(await db.result.findFirst({ where: { variant: 'fused', run: { sweepId: single } } }))!.pointHash] });
    expect(h.series[0]!.builds.map((b) => b.step)).toEqual([null, 'REGRESSION', null]);
    notifier.sweepFinished(single);
    await sleep(1500);
    expect(got).toHaveLength(1);

    // The single run annotated invalid (left out of history's steps); the next build, 3 runs, 54% slower than b,
    // annotated expected: not sent. Once the note is cleared, it is, against b.
    const annotate = (args: string[]) => cli(['results', 'annotate', ...args], { DATABASE_URL: dbUrl });
    const fusedHash = (await db.result.findFirst({ where: { variant: 'fused', run: { sweepId: single } } }))!.pointHash;
    expect((await annotate(['--build', 'cccccccc3333', '--point', fusedHash, '--as', 'invalid', '--note', 'one run on a busy host'])).exitCode).toBe(0);
    const fourth = await sweepOf(db, 'fourth', 'dddddddd4444', 200, 3, t0 + 10_800_000);
    const a = await annotate(['--build', 'dddddddd4444', '--point', fusedHash, '--as', 'expected', '--note', 'accepted: exact softmax']);
    expect(a.exitCode, a.stderr).toBe(0);
    notifier.sweepFinished(fourth);
    await sleep(1500);
    expect(got).toHaveLength(1);
    expect((await annotate(['--build', 'dddddddd4444', '--point', fusedHash, '--clear'])).exitCode).toBe(0);
    notifier.sweepFinished(fourth);
    await waitFor('the second digest', async () => (got.length > 1 ? true : null), 30_000);
    expect(got[1]!.regressions).toHaveLength(1);
    expect(got[1]!.regressions[0]).toMatchObject({ kind: 'history', build: { sourceHash: 'dddddddd4444' }, against: { sourceHash: 'bbbbbbbb2222' } });
    expect(lines.filter((l) => /notify: sent/.test(l))).toHaveLength(2);
  });
});
