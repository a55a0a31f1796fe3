/**
 * Tunables as sweep axes and the farm as autotuner, against the real thing: the submit-time check
 * of matrix.tune against the source's variant table; `moefarm tune` through the built CLI on a farm
 * in this process (real Redis, SQLite and Postgres, the real CPU binary), where the CPU variant
 * `fused` at group=1 re-reads every expert's weights per token (measured: about 25% slower than
 * group=16 at the tiny preset, 64 tokens) and group=8 and group=16 do the very same work at 8 tokens
 * (no expert gets more than 8 tokens); and the tuning table it writes, built into a fresh binary
 * that then uses the tuned value without --tune.
 */
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSweepResults } from '../src/results/load.js';
import { decideTuning, updateTuningTable } from '../src/results/tune.js';
import { planSweep } from '../src/sweep/expand.js';
import { parseSweepText } from '../src/sweep/load.js';
import { submitPlan } from '../src/queue/submit.js';
import { Queue } from 'bullmq';
import { queuePrefix } from '../src/config.js';
import { RESULTS_QUEUE } from '../src/queue/names.js';
import { OutcomeSchema } from '../src/schema/job.js';
import { recordOutcome } from '../src/db/record.js';
import { compareSweep } from '../src/results/compare.js';
import { formatComparison } from '../src/commands/results-compare.js';
import { binaryArgs, processUnits } from '../worker/args.js';
import { mergeRounds } from '../worker/rounds.js';
import type { BenchOutput, Energy } from '../src/schema/bench-output.js';
import { toJob } from '../src/queue/job.js';
import { farmFor, runsSettled } from './helpers/farm.js';
import { cli, ROOT, tempDir, waitFor } from './helpers/services.js';

let cleanups: Array<() => unknown> = [];
beforeEach(() => {
  cleanups = [];
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
});

const tuneSweep = (name: string, pool: string, tokens: number, groups: number[], rounds = 12, iters = 8) => `
name: ${name}
pool: ${pool}
interleave: true
rounds: ${rounds}
timeout_s: 120
matrix:
  variant: fused
  tune: {fused: {group: [${groups.join(', ')}]}}
  model: tiny
  tokens: ${tokens}
  warmup: 2
  iters: ${iters}
`;

describe('matrix.tune at submit', () => {
  it('refuses a value outside the tunable\'s range, naming the variant, the tunable and the field (exit 2)', async () => {
    const t = tempDir('tune-bad');
    cleanups.push(t.cleanup);
    const file = join(t.dir, 'bad.yaml');
    writeFileSync(file, tuneSweep('bad', 'p', 8, [8, 3]));
    const r = await cli(['sweep', 'submit', '--dry-run', file]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('matrix.tune.fused.group[1]: variant fused of');
    expect(r.stderr).toContain('tunable group=3: expected one of 1, 2, 4, 8, 16');

    expect(() => planSweep(parseSweepText(tuneSweep('x', 'p', 8, [8]).replace('group:', 'groups:'), 'x.yaml'), { file: 'x.yaml' })).toThrow(
      /x\.yaml: matrix\.tune\.fused\.groups: variant fused of .*: unknown tunable 'groups' \(tunables: group\)/,
    );
    // A variant the sweep does not run, and a value listed twice, are refused by the file's schema.
    expect(() => parseSweepText(tuneSweep('x', 'p', 8, [8]).replace('{fused: {', '{reference: {'), 'x.yaml')).toThrow(/matrix\.tune\.reference: expected one of the sweep's variants \(fused\)/);
    expect(() => parseSweepText(tuneSweep('x', 'p', 8, [8, 8]), 'x.yaml')).toThrow(/matrix\.tune\.fused\.group: expected each value once/);
    // moefarm tune needs settings to choose between: a sweep file without matrix.tune is refused before anything is submitted.
    const plain = join(t.dir, 'plain.yaml');
    writeFileSync(plain, tuneSweep('plain', 'p', 8, [8]).replace(/  tune: .*\n/, ''));
    const nt = await cli(['tune', '--sweep', plain], { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'file:/nonexistent/dir/never.db' });
    expect(nt.exitCode).toBe(2);
    expect(nt.stderr).toContain('plain.yaml: matrix.tune: a tuning sweep lists tunable values per variant');
  });

  it('makes the setting part of the point and its hash, interleaves the settings of one variant as processes of their own, and passes --tune', () => {
    const sweep = parseSweepText(tuneSweep('x', 'p', 8, [1, 16]).replace('variant: fused', 'variant: [reference, fused]'), 'x.yaml');
    const plan = planSweep(sweep, { file: 'x.yaml' });
    expect(plan.points.map((p) => [p.point.variant, p.point.tune])).toEqual([['reference', undefined], ['fused', { group: 1 }], ['fused', { group: 16 }]]);
    expect(new Set(plan.points.map((p) => p.hash)).size).toBe(3);
    // An untuned point keeps the hash it had before tunables existed (no `tune` key at all).
    expect('tune' in plan.points[0]!.point).toBe(false);
    const untuned = planSweep(parseSweepText(tuneSweep('x', 'p', 8, [1]).replace(/  tune: .*\n/, '').replace('variant: fused', 'variant: [reference, fused]'), 'x.yaml'), { file: 'x.yaml' });
    expect(untuned.points[0]!.hash).toBe(plan.points[0]!.hash);
    // One job (interleaved), two processes: {reference, fused group=1} and {fused group=16}.
    expect(plan.runs).toHaveLength(1);
    const job = toJob(plan, plan.runs[0]!, Date.now());
    const units = processUnits(job);
    expect(units.map((u) => u.points.map((p) => p.point.variant))).toEqual([['reference', 'fused'], ['fused']]);
    expect(binaryArgs(job, null, { unit: units[0]!, rounds: 1 })).toEqual(expect.arrayContaining(['--variant', 'reference,fused', '--tune', 'fused:group=1']));
    expect(binaryArgs(job, null, { unit: units[1]!, rounds: 1 })).toEqual(expect.arrayContaining(['--variant', 'fused', '--tune', 'fused:group=16']));
  });
});

describe('energy over interleaved rounds', () => {
  it('is the mean of the rounds that measured it, with the reason kept when none did', () => {
    // TEST DOUBLE of a GPU's energy figures on one variant's per-round outputs (the CPU backend has none).
    const round = (r: number, energy: Energy | null): BenchOutput => ({
      schema: 'moefarm.bench/1' as const,
      config: { backend: 'cuda' as const, variants: ['persistent-splitk'], hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 16, dtype: 'bf16', warmup: 1, iters: 2 },
      device: { kind: 'cuda' as const, name: 'GPU' },
      build: { source_hash: 'x', compiler: 'nvcc', flags: '', arch: 'sm_90a' },
      bytes_per_iter: 1000,
      check: { pass: true },
      results: [{ variant: 'persistent-splitk', check: { pass: true, rel_err: 0.001, tol: 0.02 }, samples_us: [100 + r, 101 + r], rounds: [0, 0], sm_clock_mhz: null, stats: { n: 2, min: 1, p10: 1, median: 1, mean: 1, p90: 1, p99: 1, max: 1, stdev: 0 }, bandwidth_gbps: 1, energy }],
    });
    const measured = (j: number) => ({ joules_per_forward: j, mean_power_w: j * 10000, reason: null, counter_step_mj_min: 1 });
    const m = mergeRounds([round(0, measured(0.01)), round(1, { joules_per_forward: null, mean_power_w: null, reason: 'window too short' }), round(2, measured(0.02))]);
    expect(m.results[0]!.energy).toMatchObject({ joules_per_forward: 0.015, mean_power_w: 150, reason: null, rounds_measured: 2 });
    expect(m.results[0]!.rounds).toEqual([0, 0, 1, 1, 2, 2]);
    const none = mergeRounds([round(0, { joules_per_forward: null, mean_power_w: null, reason: 'cpu backend' }), round(1, { joules_per_forward: null, mean_power_w: null, reason: 'cpu backend' })]);
    expect(none.results[0]!.energy).toEqual({ joules_per_forward: null, mean_power_w: null, reason: 'cpu backend' });
  });
});

describe('moefarm tune on the CPU backend', () => {
  it('picks the setting that does the work once over the one that re-reads the weights per token, writes it, and the binary then uses it by default', async () => {
    const { farm, pool, dbUrl, dir } = await farmFor('tune', 'sqlite', cleanups);
    // A copy of csrc/ to write the tuning table into and build from (this checkout's csrc/ is left alone).
    const csrc = join(dir, 'csrc');
    cpSync(join(ROOT, 'csrc'), csrc, { recursive: true, filter: (src) => !/[/\\]build($|[/\\])/.test(src.slice(ROOT.length)) });
    const out = join(csrc, 'tuning', 'cpu-test.json');
    expect(existsSync(out)).toBe(false);
    const file = join(dir, 'faster.yaml');
    // On a shared 2-core machine (CI runs two test files at once) a round can be upset by a neighbour, and on some
    // CPUs the gap is small (1.08x in the medians once, where the tiny model's weights stay in cache): 30 rounds of
    // 24 iterations each (a round's median over more samples), so the paired test still decides.
    writeFileSync(file, tuneSweep('tune-faster', pool, 64, [1, 16], 30, 24));

    const r = await cli(['tune', '--sweep', file, '--out', out, '--json'], { DATABASE_URL: dbUrl }, { timeoutMs: 300_000 });
    expect(r.stderr).toContain('waiting for outcomes');
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { sweepId: string; decisions: Array<Record<string, unknown>>; written: string[]; table: { entries: Array<Record<string, unknown>> } };
    expect(report.decisions).toHaveLength(1);
    const d = report.decisions[0]!;
    expect(d['outcome'], JSON.stringify(d)).toBe('winner');
    expect(d).toMatchObject({ variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 64, dtype: 'bf16', outcome: 'winner', best: 'group=16', runnerUp: 'group=1', verdict: 'FASTER', mode: 'paired' });
    expect(d['speedup'] as number).toBeGreaterThan(1.02);
    expect(report.written).toHaveLength(1);

    // Stored per result: the setting asked for, every value the binary used with its source, its device, and no energy on a CPU.
    const results = await farm.db.result.findMany({ where: { run: { sweepId: report.sweepId } }, orderBy: { tune: 'asc' } });
    expect(results.map((x) => [x.variant, x.tune])).toEqual([['fused', 'group=1'], ['fused', 'group=16']]);
    expect(JSON.parse(results[1]!.tunables!)).toEqual({ group: { source: 'flag', value: 16 } });
    expect(results[1]!.device).toBe(d['device']);
    expect(results[1]!.joulesPerForward).toBeNull();
    expect(results[1]!.meanPowerW).toBeNull();
    expect(JSON.parse(results[1]!.energy!)).toMatchObject({ joules_per_forward: null, reason: expect.stringContaining('cpu') });

    // compare names each arm by its setting and shows "-" for energy on a CPU.
    const cmp = await cli(['results', 'compare', '--sweep', report.sweepId, '--energy'], { DATABASE_URL: dbUrl });
    expect(cmp.exitCode, cmp.stderr).toBe(0);
    expect(cmp.stdout).toMatch(/fused group=16 .* - +- +FASTER \(paired\)/);
    expect(cmp.stdout).toContain('baseline fused group=1');

    // The same decision from the finished sweep's id (nothing submitted), as a table.
    const again = await cli(['tune', '--sweep', report.sweepId], { DATABASE_URL: dbUrl });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/fused h256\/i128\/e16\/k4 T=64 bf16 +group=16 .* group=1 .* FASTER \(paired\) +WINNER group=16/);
    expect(again.stdout).toContain('search: exhaustive');

    // export and list carry the setting too.
    const csv = (await cli(['results', 'export', '--sweep', report.sweepId], { DATABASE_URL: dbUrl })).stdout.trim().split('\n');
    const header = csv[0]!.split(',');
    expect(header.slice(header.indexOf('variant'), header.indexOf('variant') + 2)).toEqual(['variant', 'tune']);
    expect(new Set(csv.slice(1).map((l) => l.split(',')[header.indexOf('tune')]))).toEqual(new Set(['group=1', 'group=16']));
    expect((await cli(['results', 'list', '--sweep', report.sweepId], { DATABASE_URL: dbUrl })).stdout).toContain('fused group=16');

    // The file is a tuning table the binary reads: built from the copy, run without --tune, it uses group=16.
    const entry = JSON.parse(readFileSync(out, 'utf8')).entries[0];
    expect(entry).toMatchObject({ device: d['device'], variant: 'fused', tokens: 64, dtype: 'bf16', tunables: { group: 16 } });
    const build = join(dir, 'build');
    await execa('make', ['-s', '-C', csrc, 'cpu', `BUILD=${build}`], { timeout: 240_000 });
    const run = async (...extra: string[]) =>
      JSON.parse((await execa(join(build, 'moe-bench'), ['--variant', 'fused', '--model', 'tiny', '--tokens', '64', '--iters', '2', '--warmup', '0', ...extra])).stdout) as {
        results: Array<{ tunables: Record<string, { value: number; source: string; origin?: string }> }>;
      };
    expect((await run()).results[0]!.tunables['group']).toEqual({ value: 16, source: 'tuning_table', origin: 'tuning/cpu-test.json: entries.0' });
    expect((await run('--no-tuning-table')).results[0]!.tunables['group']).toEqual({ value: 8, source: 'default' });
    // Another key (32 tokens) is not this entry's: the variant table's default.
    expect((await run('--tokens', '32')).results[0]!.tunables['group']).toMatchObject({ value: 8, source: 'default' });
  }, 420_000);

  it('reports a tie between settings that do identical work and writes nothing for it; energy figures are stored per result and shown beside time (Postgres)', async () => {
    const { farm, pool } = await farmFor('tune', 'postgres', cleanups);
    const plan = planSweep(parseSweepText(tuneSweep('tune-tie', pool, 8, [8, 16]), 'tie.yaml'), { file: 'tie.yaml' });
    await submitPlan(farm.db, farm.redis, plan, 'tie.yaml');
    await waitFor('the tie sweep to finish', () => runsSettled(farm.db, plan.sweepId, 1), 240_000);
    const report = decideTuning(await loadSweepResults(farm.db, plan.sweepId));
    expect(report.decisions).toHaveLength(1);
    const d = report.decisions[0]!;
    expect(d.settings.map((s) => s.tune).sort()).toEqual(['group=16', 'group=8']);
    expect(d.outcome).toBe('tie');
    expect(d.verdict).not.toBe('FASTER');
    expect(d.reason).toMatch(/is not slower than .* beyond doubt/);
    const existing = { schema: 'moefarm.tuning/1' as const, entries: [] };
    const update = updateTuningTable(existing, report);
    expect(update.table.entries).toEqual([]);
    expect(update.kept).toHaveLength(1);

    // Energy stored and shown: the run's real outcome, given energy figures as a GPU would report them. TEST DOUBLE:
    // the CPU backend has no energy counter, so the figures (and only they) are made up here, under a sweep of their own.
    const results = new Queue(RESULTS_QUEUE, { connection: farm.redis, prefix: queuePrefix() });
    // The collector acknowledges a result after its row commits: the run settles a moment before its job completes.
    await waitFor('the outcome to be acknowledged', async () => (await results.getCompletedCount()) >= 1);
    const [delivered] = await results.getCompleted();
    await results.close();
    const outcome = OutcomeSchema.parse(delivered!.data);
    const sweepId = 'senergydouble';
    const runId = `${sweepId}-${outcome.job.groupHash}-r0`;
    const gpuLike = {
      ...outcome,
      runId,
      sweepId,
      job: { ...outcome.job, runId, sweepId },
      builds: outcome.builds.map((b) => ({
        ...b,
        output: {
          ...b.output,
          results: b.output.results.map((r) => ({
            ...r,
            energy: {
              joules_per_forward: r.tunables?.['group']?.value === 8 ? 0.012 : 0.015,
              mean_power_w: 310.5,
              reason: null,
              counter_update_ms: { min: 20, median: 25, max: 30 },
              counter_step_mj_min: 1,
            },
          })),
        },
      })),
    };
    expect(await recordOutcome(farm.db, OutcomeSchema.parse(gpuLike))).toBe('recorded');
    const stored = await farm.db.result.findMany({ where: { runId }, orderBy: { tune: 'asc' } });
    expect(stored.map((x) => [x.tune, x.joulesPerForward, x.meanPowerW, x.energyStepMj, x.energyUpdateMs])).toEqual([
      ['group=16', 0.015, 310.5, 1, 25],
      ['group=8', 0.012, 310.5, 1, 25],
    ]);
    const cmp = compareSweep(await loadSweepResults(farm.db, sweepId), { by: 'variant', name: 'fused group=8' });
    expect(cmp.rows.map((r) => [r.variant, r.joulesPerForward, r.meanPowerW])).toEqual([
      ['fused group=8', 0.012, 310.5],
      ['fused group=16', 0.015, 310.5],
    ]);
    const text = formatComparison(cmp);
    expect(text).toMatch(/mJ\/fwd +W +verdict/);
    expect(text).toMatch(/fused group=16 .* 15(\.0+)? +310\.5 /);
  }, 300_000);
});
