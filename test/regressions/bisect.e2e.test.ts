/**
 * Regressions as a developer meets them, with real processes throughout: a
 * real git repository of 8 commits in which commit 5 makes the CPU kernel do
 * its `reference` work twice (and commit 6 does not build, commit 7 fixes
 * it). `moefarm bisect --local` (its own worker and collector) is SIGKILLed
 * mid-way; the same command against a running farm resumes from the
 * database and names commit 5 in at most 4 steps, skipping commit 6. Then
 * `moefarm check` fails on the slow commit's sweep and passes on a commit
 * without the slowdown; and `moefarm serve --notify` POSTs the regression of
 * an A/B sweep to an HTTP server of this test, which answers 500 first: the
 * message comes again after the backoff, and the URL's secrets are in no log.
 * Real Redis, SQLite, git, the real CPU binary.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { openDb } from '../../src/db/client.js';
import { startFarm, runsSettled } from '../helpers/farm.js';
import { doubleReferenceWork, referenceSweep, tempRepo, type TempRepo } from '../helpers/git-repo.js';
import { CLI, freshPrefix, sqliteUrl, tempDir, waitFor } from '../helpers/services.js';
import { TEST_CACHE, TEST_REDIS_URL } from '../helpers/env.js';

// Five sources are built from scratch (about 10 s of CPU each, far longer on a loaded 2-core machine).
vi.setConfig({ testTimeout: 900_000 });

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** c1 (the copy of csrc) … c8: comments in a build input, the slowdown at c5, a broken build at c6 fixed at c7. */
function eightCommits(repo: TempRepo): string[] {
  const commits = [repo.git('rev-parse', 'HEAD')];
  const comment = (n: number) => repo.edit('src/cpu/oracle.cpp', (t) => `${t}// commit ${n}\n`);
  for (const n of [2, 3, 4]) {
    comment(n);
    commits.push(repo.commit(`c${n}: a comment in the CPU oracle`));
  }
  repo.edit('src/cpu/variants.cpp', doubleReferenceWork);
  commits.push(repo.commit('c5: the reference kernel does its work twice'));
  repo.edit('src/cpu/oracle.cpp', (t) => `${t}this is not C++;\n`);
  commits.push(repo.commit('c6: a typo that breaks the build'));
  repo.edit('src/cpu/oracle.cpp', (t) => `${t.replace('this is not C++;\n', '')}// commit 7\n`);
  commits.push(repo.commit('c7: fix the build'));
  comment(8);
  commits.push(repo.commit('c8: a comment in the CPU oracle'));
  return commits;
}

interface Outcome {
  bisectId: string;
  status: string;
  resumed: number;
  firstBad: { commit: string; subject: string } | null;
  bisectSteps: number;
  steps: Array<{ commit: string; status: string; sweepId: string | null; reason: string; verdict: string | null }>;
}

describe('bisect, check and alerts on a repository with a hidden slow commit', () => {
  it('bisect names commit 5 in at most 4 steps and resumes after a SIGKILL; check fails on it and passes without it; the webhook gets the regression after a 500', async () => {
    const p = freshPrefix();
    cleanups.push(p.cleanup);
    const pool = `bisect-${p.prefix}`;
    const repo = tempRepo('bisect');
    cleanups.push(repo.cleanup);
    const c = eightCommits(repo);
    writeFileSync(join(repo.dir, 'bisect.yaml'), referenceSweep('bisect', pool));
    const db = tempDir('bisect-db');
    cleanups.push(db.cleanup);
    const dbUrl = sqliteUrl(db.dir);
    const env = { REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: p.prefix, MOEFARM_CACHE: TEST_CACHE, DATABASE_URL: dbUrl, MOEFARM_LOCK_MS: '2000' };
    const moefarm = (args: string[], timeout = 600_000) => execa(process.execPath, [CLI, ...args], { cwd: repo.dir, reject: false, timeout, env });
    const args = ['bisect', '--good', c[0]!, '--bad', c[7]!, '--sweep', 'bisect.yaml', '--source', 'csrc', '--budget', '2'];

    // 1. On this machine alone (--local), killed once the second step (the first after the check of bad) is under way.
    const first = moefarm([...args, '--local']);
    const probe = await openDb({ url: dbUrl });
    cleanups.push(() => probe.$disconnect());
    const before = await waitFor('the second step of the bisect', async () => {
      const steps = await probe.bisectStep.findMany({ orderBy: { seq: 'asc' } }).catch(() => []);
      return steps.length >= 2 ? steps : null;
    }, 400_000, 100);
    first.kill('SIGKILL');
    const killed = await first;
    expect(killed.signal, String(killed.stderr)).toBe('SIGKILL');
    expect(before[0]).toMatchObject({ commit: c[7], status: 'bad', seq: 1 });

    // 2. The same command against a running farm (a worker and a collector of this test) resumes it.
    const farm = await startFarm({ dbUrl, pool, lockDurationMs: 2000 });
    cleanups.push(farm.close);
    const resumed = await moefarm([...args, '--json']);
    expect(resumed.exitCode, String(resumed.stderr)).toBe(0);
    expect(String(resumed.stderr)).toMatch(/resuming: [12] step\(s\) already recorded/);
    const o = JSON.parse(String(resumed.stdout)) as Outcome;
    expect(o.status).toBe('found');
    expect(o.firstBad).toEqual({ commit: c[4], subject: 'c5: the reference kernel does its work twice' });
    expect(o.resumed).toBeGreaterThanOrEqual(1);
    expect(o.bisectSteps).toBeLessThanOrEqual(4);
    expect(o.steps[0]).toMatchObject({ commit: c[7], status: 'bad', verdict: 'SLOWER', sweepId: before[0]!.sweepId });
    const byCommit = new Map(o.steps.map((s) => [s.commit, s]));
    expect(byCommit.get(c[4]!)).toMatchObject({ status: 'bad', verdict: 'SLOWER' });
    for (const s of o.steps) if (s.status === 'skip') expect(s).toMatchObject({ commit: c[5], reason: expect.stringMatching(/^does not build: .*compile-error/) });
    for (const i of [1, 2, 3]) if (byCommit.has(c[i]!)) expect(byCommit.get(c[i]!)!.status).toBe('good');
    // Every step but the interrupted one was measured once: one sweep per commit, none twice.
    expect(new Set(o.steps.map((s) => s.sweepId).filter(Boolean)).size).toBe(o.steps.filter((s) => s.sweepId).length);

    // Asked again, everything is recorded: the evidence table at once.
    const again = await moefarm(args, 120_000);
    expect(again.exitCode, String(again.stderr)).toBe(0);
    expect(String(again.stdout)).toContain(`first slower commit: ${c[4]} "c5: the reference kernel does its work twice"`);
    expect(String(again.stdout)).toMatch(/evidence: the first slower commit against good/);
    expect(String(again.stdout)).toMatch(/tiny T=1 bf16\s+commit\s+reference\s+.*SLOWER \(paired\)/);

    // 3. The gate: the slow commit's sweep fails it, with a summary; a commit before the slowdown passes.
    const md = join(db.dir, 'summary.md');
    const slow = await moefarm(['check', '--sweep', byCommit.get(c[4]!)!.sweepId!, '--markdown', md, '--report', join(db.dir, 'report.html')], 120_000);
    expect(slow.exitCode, String(slow.stderr)).toBe(1);
    const summary = readFileSync(md, 'utf8');
    expect(summary).toMatch(/^### moefarm check FAILED: 1 comparison\(s\) SLOWER by more than 5%/);
    expect(summary).toMatch(/\| tiny T=1 bf16 \| commit reference \| .* \| SLOWER \(paired\) \| \*\*fail\*\*: slower by \d+\.\d%, beyond the 5% threshold \|/);
    expect(summary).toContain(`commit \`${c[4]!.slice(0, 10)}\``);
    expect(summary).toContain(`**HTML report:** ${join(db.dir, 'report.html')}`);
    expect(readFileSync(join(db.dir, 'report.html'), 'utf8')).toContain('commit reference');
    const fine = o.steps.find((s) => s.status === 'good' && s.sweepId);
    if (fine) {
      const ok = await moefarm(['check', '--sweep', fine.sweepId!], 120_000);
      expect(ok.exitCode, `${String(ok.stdout)}\n${String(ok.stderr)}`).toBe(0);
    }

    // 4. Alerts: serve --notify takes over collecting; an A/B sweep of good against bad ends SLOWER.
    await farm.collector.close();
    const received: Array<{ url: string; auth: string | undefined; body: { event: string; sweep: { id: string }; regression: { kind: string; build: { name: string }; slowerPct: number } } }> = [];
    const server = createServer((req: IncomingMessage, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        received.push({ url: req.url ?? '', auth: req.headers.authorization, body: JSON.parse(data) as (typeof received)[number]['body'] });
        res.statusCode = received.length === 1 ? 500 : 200;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r(undefined))));
    const port = (server.address() as AddressInfo).port;
    const serve = execa(process.execPath, [CLI, 'serve', '--notify', `http://hookuser:s3cret@127.0.0.1:${port}/hooks/T0KEN`, '--log-format', 'json'], { cwd: repo.dir, reject: false, env: { ...env, MOEFARM_NOTIFY_BACKOFF_MS: '500' } });
    cleanups.push(() => serve.kill('SIGKILL'));
    writeFileSync(join(repo.dir, 'ab.yaml'), referenceSweep('alert-ab', pool, `interleave: true\nbuilds:\n  base: { git: ${c[0]} }\n  change: { git: ${c[7]} }\nbaseline: { build: base }\n`));
    const submit = await moefarm(['sweep', 'submit', 'ab.yaml', '--source', 'csrc', '--json'], 120_000);
    expect(submit.exitCode, String(submit.stderr)).toBe(0);
    const sweepId = (JSON.parse(String(submit.stdout)) as { sweepId: string }).sweepId;
    await waitFor('the A/B sweep', () => runsSettled(farm.db, sweepId, 2), 300_000);
    await waitFor('the webhook to be taken after one 500', async () => (received.length >= 2 ? true : null), 60_000);
    serve.kill('SIGTERM');
    const log = await serve;
    for (const r of received.slice(0, 2)) {
      expect(r.url).toBe('/hooks/T0KEN');
      expect(r.auth).toBe(`Basic ${Buffer.from('hookuser:s3cret').toString('base64')}`);
      expect(r.body).toMatchObject({ event: 'regression', sweep: { id: sweepId }, regression: { kind: 'ab', build: { name: 'change' } } });
      expect(r.body.regression.slowerPct).toBeGreaterThan(20);
    }
    expect(JSON.stringify(received[1]!.body)).toBe(JSON.stringify(received[0]!.body));
    const lines = String(log.stderr);
    expect(lines).toMatch(/notify: http:\/\/127\.0\.0\.1:\d+\/… answered HTTP 500; retrying in 500 ms/);
    expect(lines).toMatch(/notify: sent regression of sweep \w+ to http:\/\/127\.0\.0\.1:\d+\/… \(HTTP 200, attempt 2\)/);
    expect(lines).not.toMatch(/s3cret|T0KEN|hookuser/);
  });
});
