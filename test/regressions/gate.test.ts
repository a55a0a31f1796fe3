/**
 * The regression gate through the real CLI (`moefarm check`) on a real
 * SQLite database whose results are written by the collector's own write
 * (test/results/synth.ts), so each verdict is the one wanted: SLOWER (exit
 * 1, and 0 once the threshold is above the slowdown), SAME (0), UNSURE (0 by
 * default, saying so; 1 with --unsure fail), bad usage (2), the markdown
 * summary, and a step annotated expected that no longer fails the gate; on
 * SQLite and on Postgres (the annotation table of migration 004).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/db/client.js';
import { cli, freshPostgres, sqliteUrl, tempDir } from '../helpers/services.js';
import { plannedSweep, record, rng, runSamples, sweepYaml } from '../results/synth.js';

const SOURCE = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
let dir: { dir: string; cleanup: () => void };
let dbUrl: string;
let db: Db;
let dropPg: (() => Promise<void>) | null = null;

/** A sweep of reference (100 µs) against fused (`fused` µs): `repeat` runs each, the seed fixed. */
async function sweep(name: string, fused: number, repeat: number, seed: number): Promise<string> {
  const plan = await plannedSweep(db, sweepYaml({ name, repeat }));
  const r = rng(seed);
  for (const run of plan.runs) {
    const v = run.points[0]!.point.variant;
    await record(db, plan, run, { results: [{ variant: v, samples: runSamples(r, 60, v === 'fused' ? fused : 100, 0.003, 0.01) }], sourceHash: SOURCE, gitCommit: null });
  }
  return plan.sweepId;
}

const check = (args: string[]) => cli(['check', ...args], { DATABASE_URL: dbUrl });

describe.each(['sqlite', 'postgres'] as const)('moefarm check (%s)', (provider) => {
  beforeAll(async () => {
    dir = tempDir('gate');
    if (provider === 'postgres') {
      const pg = await freshPostgres();
      dbUrl = pg.url;
      dropPg = pg.drop;
    } else {
      dbUrl = sqliteUrl(dir.dir);
    }
    db = await openDb({ url: dbUrl });
  });
  afterAll(async () => {
    await db?.$disconnect();
    await dropPg?.();
    dropPg = null;
    dir?.cleanup();
  });
  let slower: string;
  let same: string;
  let unsure: string;
  beforeAll(async () => {
    slower = await sweep('slower', 125, 3, 1);
    same = await sweep('same', 100, 3, 2);
    unsure = await sweep('unsure', 100, 1, 3);
  });

  it('exits 1 on a confirmed SLOWER beyond the threshold, with a markdown summary a pull request can show', async () => {
    const md = join(dir.dir, 'summary.md');
    const r = await check(['--sweep', slower, '--markdown', md]);
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/tiny T=1 bf16\s+fused\s+0\.[78]\d+\s+\[0\.\d+, 0\.\d+\]\s+SLOWER\s+FAIL\s+slower by 2\d\.\d%, beyond the 5% threshold/);
    expect(r.stdout).toMatch(/check: FAILED: 1 comparison\(s\) SLOWER by more than 5%/);
    expect(r.stderr).toMatch(/^moefarm: check failed: 1 comparison\(s\) SLOWER by more than 5%/);
    const text = readFileSync(md, 'utf8');
    expect(text).toMatch(/^### moefarm check FAILED: 1 comparison\(s\) SLOWER by more than 5%/);
    expect(text).toMatch(/\| point \| variant \| median \| baseline median \| speedup \| 95% CI \| p \| verdict \| check \|/);
    expect(text).toMatch(/\| tiny T=1 bf16 \| fused \| 12\d\.?\d* µs \| 10\d\.?\d* µs \| 0\.[78]\d\d \| \[0\.\d{3}, 0\.\d{3}\] \| [\d.e-]+ \| SLOWER \| \*\*fail\*\*: slower by 2\d\.\d%, beyond the 5% threshold \|/);
    expect(text).toContain('**Environment:** cpu');
    expect(text).toContain(`**HTML report:** \`moefarm report --sweep ${slower} -o report.html\``);
    expect(text).toContain('How verdicts are decided');

    const lenient = await check(['--sweep', slower, '--threshold', '30', '--json']);
    expect(lenient.exitCode, lenient.stderr).toBe(0);
    const j = JSON.parse(lenient.stdout) as { passed: boolean; rows: Array<{ variant: string; outcome: string; why: string; slowdownPct: number }> };
    expect(j.passed).toBe(true);
    expect(j.rows.find((x) => x.variant === 'fused')).toMatchObject({ outcome: 'pass', why: expect.stringMatching(/within the 30% threshold/) });
  });

  it('exits 0 on SAME', async () => {
    const r = await check(['--sweep', same]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/fused\s+\d\.\d+\s+\[\S+ \S+\]\s+SAME\s+PASS/);
    expect(r.stdout).toMatch(/check: passed/);
  });

  it('passes UNSURE by default and says so; --unsure fail fails it', async () => {
    const r = await check(['--sweep', unsure, '--markdown', '-']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^### moefarm check passed/);
    expect(r.stdout).toMatch(/\| UNSURE \| unsure: UNSURE: passes \(--unsure pass\) \|/);
    expect(r.stdout).toContain('UNSURE passes by default (--unsure pass)');
    const strict = await check(['--sweep', unsure, '--unsure', 'fail']);
    expect(strict.exitCode).toBe(1);
    expect(strict.stdout).toMatch(/check: FAILED: 1 comparison\(s\) UNSURE or without a baseline \(--unsure fail\)/);
  });

  it('refuses bad usage with exit 2 before opening anything', async () => {
    for (const args of [['--threshold', '5'], ['--sweep', slower, '--threshold', 'five'], ['--sweep', slower, '--unsure', 'maybe'], ['--sweep', slower, '--json', '--markdown', '-']]) {
      const r = await check(args);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(2);
    }
    const none = await check(['--sweep', 'snosuchsweep0']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/sweep snosuchsweep0: no such sweep/);
  });

  it('no longer fails on a step annotated expected; history shows it marked', async () => {
    const fused = await db.result.findFirst({ where: { variant: 'fused', run: { sweepId: slower } }, select: { pointHash: true } });
    const annotate = (args: string[]) => cli(['results', 'annotate', ...args], { DATABASE_URL: dbUrl });
    const unknown = await annotate(['--build', 'ffffff', '--point', fused!.pointHash, '--as', 'expected', '--note', 'x']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/no build of point \w+ has this source hash or commit \(its builds: a1b2c3d4e5f6\)/);
    const noNote = await annotate(['--build', SOURCE.slice(0, 8), '--point', fused!.pointHash]);
    expect(noNote.exitCode).toBe(2);
    const a = await annotate(['--build', SOURCE.slice(0, 8), '--point', fused!.pointHash.slice(0, 8), '--as', 'expected', '--note', 'fused trades 25% for exactness (issue 7)']);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/annotated the step into build a1b2c3d4e5f6 at point \w+ \(fused\) as expected: fused trades 25% for exactness/);
    const r = await check(['--sweep', slower, '--markdown', '-']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| SLOWER \| annotated: slower by 2\d\.\d%, annotated expected: fused trades 25% for exactness \(issue 7\) \|/);
    const h = await cli(['results', 'history', '--point', fused!.pointHash], { DATABASE_URL: dbUrl });
    expect(h.stdout).toMatch(/expected: fused trades 25% for exactness/);
    const cleared = await annotate(['--build', SOURCE, '--point', fused!.pointHash, '--clear']);
    expect(cleared.exitCode, cleared.stderr).toBe(0);
    expect((await check(['--sweep', slower])).exitCode).toBe(1);
  });
});
