/**
 * `results history` calls a step only by compare's run-level rule. The fault
 * it reproduces: two builds that differ only by a comment were flagged
 * REGRESSION (p=1.2e-6, +12.8%) because history tested pooled samples, and
 * the samples of one run share its process and the machine's state.
 *
 * The same kernel is built twice, from two commits of a real git repository
 * that differ by a comment (two source hashes, two binaries, through the
 * worker's own build step), and each binary is run many times (real
 * processes, this machine's run-to-run drift). Then:
 * - the two builds' runs, recorded through the collector's write as two
 *   sweeps, are followed by `results history`: no step;
 * - many histories of the same real runs, each build's runs drawn at random
 *   from the pool of identical kernels, give the false-step rate of the
 *   rule, beside the old pooled-sample rule's on the same data.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { openDb } from '../../src/db/client.js';
import { recordPlan } from '../../src/db/plan.js';
import { historyStepP, loadHistory } from '../../src/results/history.js';
import { detectSteps, DEFAULT_CHANGEPOINT_ALPHA, mulberry32 } from '../../src/stats/index.js';
import { planSweep } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { ensureBinary } from '../../worker/build.js';
import { TEST_CACHE } from '../helpers/env.js';
import { tempRepo } from '../helpers/git-repo.js';
import { cli, sqliteUrl, tempDir } from '../helpers/services.js';
import { report } from '../faults/procs.js';
import { record } from './synth.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Runs of each binary: enough run-to-run spread for Welch and the rank test on run medians to have their say. */
const RUNS = 12;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ITERS = 40;

async function runOnce(binary: string, seed: number): Promise<number[]> {
  const r = await execa(binary, ['--backend', 'cpu', '--variant', 'fused', '--model', 'tiny', '--tokens', '1', '--dtype', 'bf16', '--warmup', '2', '--iters', String(ITERS), '--seed', String(seed)]);
  const out = JSON.parse(r.stdout) as { results: Array<{ samples_us: number[] }> };
  return out.results[0]!.samples_us;
}

const sweep = (name: string, commit: string) => `
name: ${name}
pool: hist
repeat: ${RUNS}
builds:
  b: { git: ${commit} }
matrix:
  variant: fused
  model: tiny
  tokens: 1
  warmup: 2
  iters: ${ITERS}
`;

describe('history steps between two builds of the same kernel', () => {
  it('flags no step between builds that differ by a comment, and its false-step rate is about alpha', async () => {
    const repo = tempRepo('history-comment');
    cleanups.push(repo.cleanup);
    const c1 = repo.git('rev-parse', 'HEAD');
    repo.edit('src/cpu/variants.cpp', (t) => `// a comment, and nothing else, changed\n${t}`);
    const c2 = repo.commit('a comment');
    // Each commit's tree as a folder, built through the worker's build step: two source hashes, two binaries.
    const trees = tempDir('history-trees');
    cleanups.push(trees.cleanup);
    cpSync(repo.csrc, join(trees.dir, 'c2'), { recursive: true });
    repo.git('checkout', '-q', c1);
    cpSync(repo.csrc, join(trees.dir, 'c1'), { recursive: true });
    repo.git('checkout', '-q', 'main');
    const [b1, b2] = [
      await ensureBinary({ csrc: join(trees.dir, 'c1'), cache: TEST_CACHE, backend: 'cpu', arch: 'sm_90a' }),
      await ensureBinary({ csrc: join(trees.dir, 'c2'), cache: TEST_CACHE, backend: 'cpu', arch: 'sm_90a' }),
    ];
    expect(b1.info.sourceHash).not.toBe(b2.info.sourceHash);

    // Alternately, so that the machine's drift over the test hits both alike.
    const runs1: number[][] = [];
    const runs2: number[][] = [];
    for (let i = 0; i < RUNS; i++) {
      runs1.push(await runOnce(b1.path, 1 + i));
      runs2.push(await runOnce(b2.path, 1 + i));
    }

    // End to end: two sweeps (one per commit), their runs written by the collector's own write, then history.
    const t = tempDir('history-db');
    cleanups.push(t.cleanup);
    const url = sqliteUrl(t.dir);
    const db = await openDb({ url });
    cleanups.push(() => db.$disconnect());
    const at = Date.parse('2026-01-01T00:00:00Z');
    let k = 0;
    for (const [label, commit, runs] of [['c1', c1, runs1], ['c2', c2, runs2]] as const) {
      const plan = planSweep(parseSweepText(sweep(`comment-${label}`, commit), 'h.yaml'), { sourceDir: repo.csrc });
      await recordPlan(db, plan, null);
      const src = plan.builds[0]!.source;
      if (src.kind !== 'bundle') throw new Error('expected a bundle');
      for (const [i, run] of plan.runs.entries()) {
        await record(db, plan, run, { results: [{ variant: 'fused', samples: runs[i]! }], sourceHash: src.hash, gitCommit: src.meta.gitCommit, finishedAt: at + k++ * 1000 });
      }
    }
    const point = (await db.result.findFirst({ select: { pointHash: true } }))!.pointHash;
    const h = await loadHistory(db, { point });
    expect(h.series).toHaveLength(1);
    const s = h.series[0]!;
    expect(s.order).toBe('ancestry');
    expect(s.builds.map((b) => b.gitCommit)).toEqual([c1, c2]);
    expect(s.builds[1]!.step).toBeNull();
    const out = await cli(['results', 'history', '--point', point], { DATABASE_URL: url });
    expect(out.exitCode, out.stderr).toBe(0);
    expect(out.stdout).toContain('no regression or improvement flagged');
    expect(out.stdout).toContain("compare's unpaired rule");

    // The rate: histories of two "builds" of 4 runs each, drawn at random from the real runs of the two identical
    // kernels (a run is independent of the others). The old rule (Mann-Whitney on pooled samples) on the same data beside it.
    const pool = [...runs1, ...runs2];
    const rand = mulberry32(11);
    const HISTORIES = 400;
    let flagged = 0;
    let flaggedPooled = 0;
    // And by significance alone (no minimum change): how often each test rejects identical kernels at alpha.
    let rejected = 0;
    let rejectedPooled = 0;
    for (let i = 0; i < HISTORIES; i++) {
      const order = pool.map((_, j) => j);
      for (let j = order.length - 1; j > 0; j--) {
        const x = Math.floor(rand() * (j + 1));
        [order[j], order[x]] = [order[x]!, order[j]!];
      }
      const pick = (from: number) => order.slice(from, from + 4).map((j) => pool[j]!);
      const history = [pick(0), pick(4)].map((runs, b) => ({ build: `b${b}`, samples: runs.flat(), runs }));
      // The minimum change is history's own (3%); the test is what differs.
      if (detectSteps(history, { pValue: historyStepP }).steps.length) flagged++;
      if (detectSteps(history).steps.length) flaggedPooled++;
      if (detectSteps(history, { pValue: historyStepP, minChange: 0 }).steps.length) rejected++;
      if (detectSteps(history, { minChange: 0 }).steps.length) rejectedPooled++;
    }
    const rate = flagged / HISTORIES;
    const pooledRate = flaggedPooled / HISTORIES;
    report('history false steps, same kernel built twice', {
      runs: pool.length,
      histories: HISTORIES,
      stepsRunLevel: pct(rate),
      stepsPooledSamples: pct(pooledRate),
      rejectedRunLevel: pct(rejected / HISTORIES),
      rejectedPooledSamples: pct(rejectedPooled / HISTORIES),
    });
    // About alpha or below (resampled histories of one pool of runs are not independent: some slack).
    expect(rate).toBeLessThanOrEqual(3 * DEFAULT_CHANGEPOINT_ALPHA);
    expect(rejected / HISTORIES).toBeLessThanOrEqual(3 * DEFAULT_CHANGEPOINT_ALPHA);
  }, 600_000);
});
