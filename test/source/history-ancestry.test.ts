/**
 * History in commit order: four commits of a real git repository submitted
 * out of order (and a dirty tree on top of the last), results recorded in
 * that order, on Postgres. `results history` orders the builds by ancestry
 * (not by when they were first seen), marks the dirty one, and says so; a
 * series with a build from outside git falls back to the order first seen,
 * and says that.
 */
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/client.js';
import { recordPlan } from '../../src/db/plan.js';
import { loadHistory } from '../../src/results/history.js';
import { planSweep, type Plan } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { tempRepo } from '../helpers/git-repo.js';
import { cli, freshPostgres, tempDir } from '../helpers/services.js';
import { record } from '../results/synth.js';
import { runSamples, seeded } from '../helpers/latencies.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const sweep = (name: string, source: string) => `
name: ${name}
pool: hist
repeat: 2
builds:
  b: ${source}
matrix:
  variant: fused
  model: tiny
  tokens: 1
  warmup: 1
  iters: 30
`;

describe('history across commits', () => {
  it('orders builds by git ancestry, marks a dirty tree, and says when it can only order by first seen', async () => {
    const pg = await freshPostgres();
    cleanups.push(pg.drop);
    const db = await openDb({ url: pg.url });
    cleanups.push(() => db.$disconnect());
    const repo = tempRepo('history');
    cleanups.push(repo.cleanup);
    const commits = [repo.git('rev-parse', 'HEAD')];
    for (let i = 2; i <= 4; i++) {
      repo.edit('Makefile', (t) => `# revision ${i}\n${t}`);
      commits.push(repo.commit(`revision ${i}`));
    }
    repo.edit('Makefile', (t) => `# uncommitted\n${t}`);

    // Submitted (and measured) out of order: C3, C1, the dirty tree, C4, C2.
    const order: Array<{ label: string; source: string }> = [
      { label: 'C3', source: `{ git: ${commits[2]} }` },
      { label: 'C1', source: `{ git: ${commits[0]} }` },
      { label: 'dirty', source: `{ dir: ${repo.csrc} }` },
      { label: 'C4', source: `{ git: ${commits[3]} }` },
      { label: 'C2', source: `{ git: ${commits[1]} }` },
    ];
    const r = seeded(7);
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const plans: Record<string, Plan> = {};
    let i = 0;
    for (const o of order) {
      const plan = planSweep(parseSweepText(sweep(`h-${o.label}`, o.source), 'h.yaml'), { sourceDir: repo.csrc });
      await recordPlan(db, plan, null);
      plans[o.label] = plan;
      const src = plan.builds[0]!.source;
      if (src.kind !== 'bundle') throw new Error('expected a bundle');
      for (const run of plan.runs) {
        await record(db, plan, run, { results: [{ variant: 'fused', samples: runSamples(r, 30, 100, 0.01) }], sourceHash: src.hash, gitCommit: src.meta.gitCommit, finishedAt: t0 + i++ * 60_000 });
      }
    }
    const hashOf = (l: string) => (plans[l]!.builds[0]!.source as { hash: string }).hash;
    const point = plans['C1']!.points[0]!.hash;
    expect(new Set(Object.values(plans).map((p) => p.points[0]!.hash))).toEqual(new Set([point])); // one point across every build

    const h = await loadHistory(db, { point });
    expect(h.series).toHaveLength(1);
    const s = h.series[0]!;
    expect(s.order).toBe('ancestry');
    expect(s.builds.map((b) => b.sourceHash)).toEqual(['C1', 'C2', 'C3', 'C4', 'dirty'].map(hashOf));
    expect(s.builds.map((b) => b.dirty)).toEqual([false, false, false, false, true]);
    expect(s.builds.map((b) => b.gitCommit)).toEqual([...commits, commits[3]]);
    expect(s.builds.map((b) => b.generation)).toEqual([1, 2, 3, 4, 4]);

    const out = await cli(['results', 'history', '--point', point], { DATABASE_URL: pg.url });
    expect(out.exitCode, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/builds in git ancestry order/);
    expect(out.stdout.split('\n').filter((l) => / ancestry +[0-9a-f]{12} /.test(l))).toHaveLength(5);
    expect(out.stdout).toMatch(/ dirty /);

    // A build from a folder outside git: its place in the ancestry is unknown, so the series is ordered as first seen.
    const loose = tempDir('loose-csrc');
    cleanups.push(loose.cleanup);
    cpSync(repo.csrc, loose.dir, { recursive: true });
    writeFileSync(join(loose.dir, 'Makefile'), `# loose\n${(await import('node:fs')).readFileSync(join(repo.csrc, 'Makefile'), 'utf8')}`);
    const plan = planSweep(parseSweepText(sweep('h-loose', `{ dir: ${loose.dir} }`), 'h.yaml'));
    await recordPlan(db, plan, null);
    const src = plan.builds[0]!.source as { hash: string; meta: { gitCommit: string | null } };
    expect(src.meta.gitCommit).toBeNull();
    for (const run of plan.runs) await record(db, plan, run, { results: [{ variant: 'fused', samples: runSamples(r, 30, 100, 0.01) }], sourceHash: src.hash, finishedAt: t0 - 3600_000 });
    const mixed = (await loadHistory(db, { point })).series[0]!;
    expect(mixed.order).toBe('first-seen');
    expect(mixed.builds[0]!.sourceHash).toBe(src.hash); // seen first (its runs finished earliest)
    expect(mixed.builds.slice(1).map((b) => b.sourceHash)).toEqual(['C3', 'C1', 'dirty', 'C4', 'C2'].map(hashOf));
  });
});
