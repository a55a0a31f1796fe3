/**
 * The A/B workflow as a user runs it, against a real git repository made in a
 * temporary folder: edit a kernel (the CPU `reference` variant does its work
 * twice), submit `builds: {base: {git: HEAD}, change: {dir: csrc}}` through
 * the real CLI, run a worker whose own checkout is something else entirely
 * (it does not even compile, so building it would show), and compare with
 * `--baseline build=base`: SLOWER, CI below 1. With the edit reverted the
 * two builds are the same source and the verdict is never FASTER or SLOWER.
 * Real Redis, SQLite, the real CPU binary, real git.
 */
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it, vi } from 'vitest';

// These tests build the CPU binary from fresh sources (about 30 s of CPU time each, far longer on a loaded 2-core machine).
vi.setConfig({ testTimeout: 600_000 });
import { hashSources, snapshotDir } from '../../src/source/inputs.js';
import { startFarm, runsSettled, type Farm } from '../helpers/farm.js';
import { doubleReferenceWork, referenceSweep, tempRepo, type TempRepo } from '../helpers/git-repo.js';
import { CLI, freshPrefix, sqliteUrl, tempDir, waitFor } from '../helpers/services.js';
import { TEST_CACHE, TEST_REDIS_URL } from '../helpers/env.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const AB = (pool: string) => referenceSweep('ab', pool, 'interleave: true\nbuilds:\n  base: { git: HEAD }\n  change: { dir: csrc }\nbaseline: { build: base }\n');

async function moefarm(repo: TempRepo, dbUrl: string, args: string[]) {
  const r = await execa(process.execPath, [CLI, ...args], {
    cwd: repo.dir,
    reject: false,
    // A cold build of the CPU binary takes about 30 s of CPU time; on a loaded 2-core machine much longer.
    timeout: 300_000,
    env: { REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: process.env['MOEFARM_PREFIX']!, MOEFARM_CACHE: TEST_CACHE, DATABASE_URL: dbUrl },
  });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('A/B of two kernel versions through the farm', () => {
  it('says SLOWER for a build that does the work twice, builds only the submitted sources, and never FASTER/SLOWER once the edit is reverted', async () => {
    const p = freshPrefix();
    cleanups.push(p.cleanup);
    const repo = tempRepo('ab');
    cleanups.push(repo.cleanup);
    writeFileSync(join(repo.dir, 'ab.yaml'), AB(`ab-${p.prefix}`));
    const baseHash = snapshotDir(repo.csrc).hash;
    repo.edit('src/cpu/variants.cpp', doubleReferenceWork);
    const changeHash = snapshotDir(repo.csrc).hash;
    expect(changeHash).not.toBe(baseHash);

    // The worker's own checkout: another tree, one that does not even compile.
    const own = tempDir('own-checkout');
    cleanups.push(own.cleanup);
    cpSync(repo.csrc, own.dir, { recursive: true });
    writeFileSync(join(own.dir, 'src', 'main.cpp'), 'this is not C++;\n');
    const db = tempDir('ab-db');
    cleanups.push(db.cleanup);
    const dbUrl = sqliteUrl(db.dir);
    const farm: Farm = await startFarm({ dbUrl, pool: `ab-${p.prefix}`, csrc: own.dir });
    cleanups.push(farm.close);

    const submit = await moefarm(repo, dbUrl, ['sweep', 'submit', 'ab.yaml', '--source', repo.csrc, '--json']);
    expect(submit.exitCode, submit.stderr).toBe(0);
    const report = JSON.parse(submit.stdout) as { sweepId: string; jobs: number; builds: Array<{ name: string; sourceHash: string; dirty: boolean; gitCommit: string }> };
    expect(report.jobs).toBe(2);
    expect(report.builds).toEqual([
      expect.objectContaining({ name: 'base', sourceHash: baseHash, dirty: false, gitCommit: repo.git('rev-parse', 'HEAD') }),
      expect.objectContaining({ name: 'change', sourceHash: changeHash, dirty: true }),
    ]);
    await waitFor('the A/B sweep', () => runsSettled(farm.db, report.sweepId, 2), 150_000);
    const runs = await farm.db.run.findMany({ where: { sweepId: report.sweepId }, include: { results: true } });
    expect(runs.map((r) => [r.status, r.reason])).toEqual([['done', null], ['done', null]]);
    // Each result was produced by the binary of its own build's source; the worker's checkout never built.
    for (const r of runs.flatMap((x) => x.results)) expect(r.sourceHash).toBe(r.build === 'base' ? baseHash : changeHash);
    expect(new Set(runs.flatMap((x) => x.results.map((r) => r.build)))).toEqual(new Set(['base', 'change']));
    const sources = await farm.db.buildSource.findMany({ where: { hash: { in: [baseHash, changeHash] } } });
    expect(sources.map((s) => [s.hash, s.dirty]).sort()).toEqual([[baseHash, false], [changeHash, true]].sort());
    expect(await farm.db.build.count({ where: { sourceHash: hashSources(snapshotDir(own.dir).files) } })).toBe(0);

    const cmp = await moefarm(repo, dbUrl, ['results', 'compare', '--sweep', report.sweepId, '--baseline', 'build=base', '--json']);
    expect(cmp.exitCode, cmp.stderr).toBe(0);
    const rows = (JSON.parse(cmp.stdout) as { rows: Array<{ build: string; variant: string; verdict: string; mode: string; speedup: number; ciHi: number; rounds: number }> }).rows;
    const change = rows.find((r) => r.build === 'change')!;
    expect(rows.find((r) => r.build === 'base')!.verdict).toBe('BASELINE');
    expect(change).toMatchObject({ variant: 'reference', verdict: 'SLOWER', mode: 'paired', rounds: 12 });
    expect(change.ciHi).toBeLessThan(1);
    expect(change.speedup).toBeLessThan(0.8);
    const table = await moefarm(repo, dbUrl, ['results', 'compare', '--sweep', report.sweepId]);
    expect(table.stdout).toMatch(/baseline build=base/);
    expect(table.stdout).toMatch(/tiny T=1 bf16\s+change\s+reference\s+.*SLOWER \(paired\)/);
    const csv = await moefarm(repo, dbUrl, ['results', 'compare', '--sweep', report.sweepId, '--by-condition', '--csv']);
    expect(csv.stdout.split('\n')[1]).toMatch(/,tiny T=1 bf16,change,build,base,[\d.]+,reference,[\d.]+,0\.\d+,[\d.]+,[\d.]+,SLOWER$/);
    const html = join(db.dir, 'ab.html');
    const rep = await moefarm(repo, dbUrl, ['report', '--sweep', report.sweepId, '-o', html]);
    expect(rep.exitCode, rep.stderr).toBe(0);
    const page = (await import('node:fs')).readFileSync(html, 'utf8');
    expect(page).toContain('change reference');
    expect(page).toContain('builds: base, change; baseline build base');

    // The edit reverted: the same source twice, a new sweep; never a FASTER or SLOWER.
    repo.git('checkout', '--', 'csrc/src/cpu/variants.cpp');
    const again = await moefarm(repo, dbUrl, ['sweep', 'submit', 'ab.yaml', '--source', repo.csrc, '--json']);
    expect(again.exitCode, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as { sweepId: string; builds: Array<{ sourceHash: string; dirty: boolean }> };
    expect(second.sweepId).not.toBe(report.sweepId);
    expect(second.builds.map((b) => [b.sourceHash, b.dirty])).toEqual([[baseHash, false], [baseHash, false]]);
    await waitFor('the A/A sweep', () => runsSettled(farm.db, second.sweepId, 2), 150_000);
    const same = await moefarm(repo, dbUrl, ['results', 'compare', '--sweep', second.sweepId, '--json']);
    const verdict = (JSON.parse(same.stdout) as { rows: Array<{ build: string; verdict: string }> }).rows.find((r) => r.build === 'change')!.verdict;
    expect(['SAME', 'UNSURE']).toContain(verdict);
  });
});
