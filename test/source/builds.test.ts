/**
 * Builds as a sweep axis, checked at submit against each build's own variant
 * table (csrc/variants.json of that source): two commits of a real git
 * repository with different tables, errors that name the sweep file's field
 * and the build; the bundle size cap; and `source: worker`, where nothing
 * travels and the worker records what it built.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

// These tests build the CPU binary from fresh sources (about 30 s of CPU time each, far longer on a loaded 2-core machine).
vi.setConfig({ testTimeout: 600_000 });
import { UsageError } from '../../src/errors.js';
import { snapshotDir } from '../../src/source/inputs.js';
import { bundleKey } from '../../src/source/store.js';
import { planSweep } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { submitPlan } from '../../src/queue/submit.js';
import { runsSettled, startFarm } from '../helpers/farm.js';
import { tempRepo } from '../helpers/git-repo.js';
import { ROOT, cli, scratch, sqliteUrl, waitFor } from '../helpers/services.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const repo = tempRepo('tables');
cleanups.push(repo.cleanup);
const oldCommit = repo.git('rev-parse', 'HEAD');
// The newer commit's table: no `fused`, `reference` limited to 4 tokens, no olmoe preset.
repo.edit('variants.json', (text) => {
  const t = JSON.parse(text) as { variants: Array<{ name: string; limits: Record<string, unknown> }>; presets: Array<{ name: string }> };
  t.variants = t.variants.filter((v) => v.name !== 'fused');
  t.variants.find((v) => v.name === 'reference')!.limits = { tokens: { max: 4 } };
  t.presets = t.presets.filter((p) => p.name !== 'olmoe-1b-7b');
  return JSON.stringify(t, null, 2);
});
repo.commit('reference: at most 4 tokens; fused and olmoe gone');

const sweep = (matrix: string, extra = '') => `
name: tables
builds:
  old: { git: ${oldCommit} }
  new: { git: HEAD }
${extra}
matrix:
${matrix}
`;
const plan = (text: string) => planSweep(parseSweepText(text, 'tables.yaml'), { file: 'tables.yaml', sourceDir: repo.csrc });
const refusal = (text: string) => {
  try {
    plan(text);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('points checked against the table of the build that runs them', () => {
  it('refuses a variant one build lacks, naming the field and the build, and takes an exclude for that build', () => {
    expect(refusal(sweep('  variant: [reference, fused]\n  model: tiny'))).toMatch(
      /^tables\.yaml: matrix\.variant\[1\]: 'fused' is not a cpu variant \(build new \(git HEAD\): not a variant of this build; its cpu variants: reference\); drop it or add an exclude rule \{build: new, backend: cpu, variant: fused\}/,
    );
    const ok = plan(sweep('  variant: [reference, fused]\n  model: tiny', 'exclude:\n  - { build: new, variant: fused }'));
    expect(ok.points.map((p) => `${p.build}/${p.point.variant}`)).toEqual(['old/reference', 'old/fused', 'new/reference']);
    expect(ok.builds.map((b) => b.source.kind === 'bundle' && b.source.meta.gitCommit)).toEqual([oldCommit, repo.git('rev-parse', 'HEAD')]);
    // One point, two builds: the same point hash (history follows it across builds), two runs.
    expect(ok.points[0]!.hash).toBe(ok.points[2]!.hash);
    expect(ok.runs).toHaveLength(3);
  });

  it('refuses a shape limit of one build, and a preset one build lacks', () => {
    expect(refusal(sweep('  variant: reference\n  model: tiny\n  tokens: [1, 8]'))).toMatch(
      /^tables\.yaml: matrix\.tokens\[1\]: variant reference of build new \(git HEAD\) cannot run this point: tokens \(8\) must be <= 4/,
    );
    expect(refusal(sweep('  variant: reference\n  model: olmoe-1b-7b'))).toMatch(/^tables\.yaml: matrix\.model\[0\]: expected a model preset of build new \(git HEAD\) \(tiny \| qwen3-30b-a3b \| deepseek-v2-lite(?: \| [a-z0-9.-]+)*\), got 'olmoe-1b-7b'/);
  });

  it('refuses at submit what the CUDA build refuses (topk, tokens, hidden), instead of an invalid run later', () => {
    const cuda = (m: string) => `name: c\nmatrix:\n  backend: cuda\n  variant: persistent-splitk\n${m}\n`;
    const at = (text: string) => {
      try {
        planSweep(parseSweepText(text, 'c.yaml'), { file: 'c.yaml' });
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(at(cuda('  model: qwen3-30b-a3b\n  tokens: [1, 512]'))).toMatch(/c\.yaml: matrix\.tokens\[1\]: .*tokens \(512\) must be <= 256/);
    expect(at(cuda('  shape: [{hidden: 2048, inter: 768, experts: 128, topk: 64}]'))).toMatch(/c\.yaml: matrix\.shape\[0\]: .*topk \(64\) must be <= 32/);
    expect(at(cuda('  shape: [{hidden: 2050, inter: 768, experts: 128, topk: 8}]'))).toMatch(/c\.yaml: matrix\.shape\[0\]: .*hidden \(2050\) must be a multiple of 64/);
    expect(at(cuda('  model: qwen3-30b-a3b\n  dtype: fp32'))).toMatch(/c\.yaml: matrix\.dtype\[0\]: .*dtype fp32 is not supported/);
    expect(at(cuda('  model: qwen3-30b-a3b\n  tokens: [1, 256]'))).toBe('accepted');
  });

  it('names an unknown git ref and a build name that is not declared', () => {
    expect(refusal(sweep('  variant: reference\n  model: tiny').replace('{ git: HEAD }', '{ git: no-such-branch }'))).toMatch(
      /tables\.yaml: builds\.new\.git: git ref 'no-such-branch' is not a commit the repository at .* knows/,
    );
    expect(() => parseSweepText(sweep('  build: [old, nope]\n  variant: reference\n  model: tiny'), 'tables.yaml')).toThrow(/tables\.yaml: matrix\.build\[1\]: expected one of the builds named under builds: \(old, new\), got 'nope'/);
  });

  it('refuses a source bundle over the size cap at submit, before anything is stored', async () => {
    const r = await cli(['sweep', 'submit', join(ROOT, 'sweeps', 'demo.yaml'), '--dry-run'], { MOEFARM_BUNDLE_MAX_BYTES: '1000' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/demo\.yaml: the source \(this checkout's csrc\/\): the source bundle is \d+ bytes compressed \(\d+ files, \d+ bytes\), more than the limit of 1000 \(MOEFARM_BUNDLE_MAX_BYTES\)/);
  });
});

describe('source: worker', () => {
  it('sends no bundle; the worker builds its own checkout and records what it was', async () => {
    const fresh = scratch('own', cleanups);
    const own = join(fresh.dir, 'csrc');
    cpSync(join(ROOT, 'csrc'), own, { recursive: true, filter: (src) => !/[\\/]csrc[\\/]build([\\/]|$)/.test(src) });
    const pool = `own-${fresh.prefix}`;
    const farm = await startFarm({ dbUrl: sqliteUrl(fresh.dir), pool, csrc: own });
    cleanups.push(farm.close);
    const pl = planSweep(parseSweepText(`name: own\npool: ${pool}\nsource: worker\nmatrix:\n  variant: reference\n  model: tiny\n  warmup: 0\n  iters: 2\n`, 'own.yaml'));
    expect(pl.builds.map((b) => b.source.kind)).toEqual(['worker']);
    await submitPlan(farm.db, farm.redis, pl, null);
    expect(await farm.redis.keys(bundleKey('*'))).toEqual([]);
    await waitFor('the run', () => runsSettled(farm.db, pl.sweepId, 1), 280_000); // a cold CPU build on a loaded machine
    const run = await farm.db.run.findFirstOrThrow({ where: { sweepId: pl.sweepId }, include: { results: true } });
    expect(run.status).toBe('done');
    const hash = snapshotDir(own).hash;
    expect(run.results.map((r) => r.sourceHash)).toEqual([hash]);
    const src = await farm.db.buildSource.findUniqueOrThrow({ where: { hash } });
    expect(src.label).toMatch(/^worker .*\(.*csrc\)$/);
    expect(src.gitCommit).toBeNull();
  });
});
