/**
 * compare, history and report data read back from a real SQLite database
 * holding outcomes written by the collector's own write (recordOutcome),
 * with samples chosen by the test; and the CLI's output formats.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../src/db/client.js';
import { compareSweep } from '../../src/results/compare.js';
import { loadHistory } from '../../src/results/history.js';
import { loadSweepResults } from '../../src/results/load.js';
import { buildReportData } from '../../src/results/report-data.js';
import { renderReport } from '../../src/report/html.js';
import { cli, sqliteUrl, tempDir } from '../helpers/services.js';
import { plannedSweep, record, sweepYaml, telemetry } from './synth.js';
import { runSamples, seeded } from '../helpers/latencies.js';

let db: Db;
let dbUrl: string;
let cleanup: () => void;
beforeEach(async () => {
  const t = tempDir('results');
  cleanup = t.cleanup;
  dbUrl = sqliteUrl(t.dir);
  db = await openDb({ url: dbUrl });
});
afterEach(async () => {
  await db.$disconnect();
  cleanup();
});

/** T=1: fused 10% faster; T=8: identical. One reference run of T=1 is flagged throttled (and 3x slower, which must not count). */
async function seedSweep(): Promise<string> {
  const plan = await plannedSweep(db, sweepYaml({ repeat: 4, tokens: [1, 8] }));
  const r = seeded(42);
  for (const run of plan.runs) {
    const p = run.points[0]!.point;
    const level = p.tokens === 1 ? (p.variant === 'fused' ? 90 : 100) : 200;
    const flagged = p.tokens === 1 && p.variant === 'reference' && run.rep === 0;
    await record(db, plan, run, {
      results: [{ variant: p.variant, samples: runSamples(r, 40, flagged ? 300 : level, 0.02) }],
      flags: flagged ? ['throttled'] : [],
    });
  }
  return plan.sweepId;
}

describe('compare on stored results', () => {
  it('decides per point, leaves flagged runs out with a count, states the thresholds', async () => {
    const id = await seedSweep();
    const cmp = compareSweep(await loadSweepResults(db, id), null);
    expect(cmp.baseline).toBe('reference');
    expect(cmp.excludedFlagged).toBe(1);
    expect(cmp.thresholds.text).toMatch(/p < 0.01.*95% bootstrap CI.*±2%/);
    const row = (tokens: number, v: string) => cmp.rows.find((x) => x.point.includes(`T=${tokens} `) && x.variant === v)!;
    expect(row(1, 'reference')).toMatchObject({ verdict: 'BASELINE', runs: 3, excludedRuns: 1, speedup: 1 });
    const fast = row(1, 'fused');
    expect(fast.verdict).toBe('FASTER');
    expect(fast.ciLo!).toBeGreaterThan(1);
    expect(fast.speedup!).toBeCloseTo(100 / 90, 1);
    expect(fast.env).toBe('cpu · clock=default · power=default · sm=n/a');
    expect(['SAME', 'UNSURE']).toContain(row(8, 'fused').verdict);

    const all = compareSweep(await loadSweepResults(db, id), null, { includeFlagged: true });
    expect(all.rows.find((x) => x.point.includes('T=1 ') && x.variant === 'reference')!.runs).toBe(4);
  });

  it("stores each result's columns as the binary gave them, NULL where no relative error was measured", async () => {
    const plan = await plannedSweep(db, sweepYaml({ name: 'columns', repeat: 1 }));
    const [a, b] = plan.runs;
    await record(db, plan, a!, { results: [{ variant: a!.points[0]!.point.variant, samples: [3, 1, 2], rounds: [0, 1, 1], relErr: null }] });
    await record(db, plan, b!, { results: [{ variant: b!.points[0]!.point.variant, samples: [5, 4], relErr: 0.003 }] });
    const rows = await db.result.findMany({ where: { runId: { in: [a!.id, b!.id] } }, orderBy: { runId: 'asc' } });
    const byRun = new Map(rows.map((r) => [r.runId, r]));
    expect(byRun.get(a!.id)).toMatchObject({ runId: a!.id, variant: a!.points[0]!.point.variant, n: 3, median: 2, relErr: null, samplesUs: '[3,1,2]', rounds: '[0,1,1]', smClockMhz: null, checkPass: true, bytesPerIter: 1000, device: 'synthetic', sourceHash: 'srcA' });
    expect(byRun.get(b!.id)).toMatchObject({ n: 2, median: 4.5, relErr: 0.003, samplesUs: '[5,4]', rounds: '[0,0]' });
  });

  it('splits environment groups by observed clock band and says when a group has no baseline', async () => {
    const plan = await plannedSweep(db, sweepYaml({ name: 'bands', repeat: 2 }));
    const r = seeded(7);
    for (const run of plan.runs) {
      const v = run.points[0]!.point.variant;
      // The fused runs ran at a lower clock than the reference runs: not comparable.
      await record(db, plan, run, { results: [{ variant: v, samples: runSamples(r, 30, 100, 0.01) }], telemetry: telemetry(v === 'fused' ? 1710 : 1980), env: { clock: 'default', power: 'default', gpu: 'NVIDIA H100 80GB HBM3', backend: 'cuda', unknown_key: { a: 1 } } });
    }
    const cmp = compareSweep(await loadSweepResults(db, plan.sweepId), null);
    expect(cmp.rows.map((x) => [x.variant, x.smClockBand, x.verdict]).sort()).toEqual([
      ['fused', '1700-1749 MHz', 'NO-BASELINE'],
      ['reference', '1950-1999 MHz', 'BASELINE'],
    ]);
    expect(cmp.rows[1]!.gpu).toBe('NVIDIA H100 80GB HBM3');
    const merged = compareSweep(await loadSweepResults(db, plan.sweepId, { smClockBandMhz: 0 }), null);
    expect(merged.rows.map((x) => x.verdict)).toEqual(['BASELINE', expect.stringMatching(/SAME|UNSURE/)]);
  });

  it('prints a table, the by-condition table, JSON and CSV from the CLI', async () => {
    const id = await seedSweep();
    await db.$disconnect();
    const env = { DATABASE_URL: dbUrl };
    const table = await cli(['results', 'compare', '--sweep', id], env);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/environment: cpu · clock=default · power=default · sm=n\/a/);
    expect(table.stdout).toMatch(/tiny T=1 bf16\s+fused\s+4\s+0\s+160\s.*\[1\.\d+, 1\.\d+\].*FASTER/);
    expect(table.stdout).toMatch(/flagged runs \(throttled, clock-mismatch\) excluded: 1/);
    expect(table.stdout).toMatch(/verdict: FASTER\/SLOWER when p < 0.01/);

    const byCond = await cli(['results', 'compare', '--sweep', id, '--by-condition'], env);
    expect(byCond.exitCode, byCond.stderr).toBe(0);
    expect(byCond.stdout).toMatch(/condition\s+point\s+variant\s+reference_ms\s+variant_ms\s+speedup\s+ci95\s+verdict/);
    expect(byCond.stdout).toMatch(/cpu clock=default power=default\s+tiny T=1 bf16\s+fused\s+0\.09\d+\s+0\.09\d+\s+1\.\d+\s+\[1\.\d+, 1\.\d+\]\s+FASTER/);

    const json = JSON.parse((await cli(['results', 'compare', '--sweep', id, '--json'], env)).stdout);
    expect(json.rows).toHaveLength(4);
    expect(json.thresholds).toMatchObject({ alpha: 0.01, band: 0.02, confidence: 0.95 });

    const csv = (await cli(['results', 'compare', '--sweep', id, '--csv'], env)).stdout.trim().split('\n');
    expect(csv[0]).toBe('point,gpu,clock,power,sm_clock_band,build,variant,baseline_by,baseline,runs,excluded_runs,samples,median_us,p10_us,p90_us,iqr_rel,speedup,ci_lo,ci_hi,mode,p,p_mann_whitney,p_run_level,verdict,reason,joules_per_forward,mean_power_w,energy_runs');
    expect(csv).toHaveLength(5);

    const bad = await cli(['results', 'compare', '--sweep', 'nope'], env);
    expect(bad.exitCode).toBe(2);
  });
});

describe('history across builds', () => {
  it('orders builds by first time seen and flags a regression beyond the threshold', async () => {
    const t0 = Date.parse('2025-01-01T00:00:00Z');
    const r = seeded(99);
    const builds = [
      { name: 'hC', src: 'cccccccc1111', commit: 'c0ffee3', at: t0 + 2 * 3600e3, fused: 112 },
      { name: 'hA', src: 'aaaaaaaa1111', commit: 'c0ffee1', at: t0, fused: 100 },
      { name: 'hB', src: 'bbbbbbbb1111', commit: 'c0ffee2', at: t0 + 3600e3, fused: 100.5 },
    ];
    let fusedHash = '';
    for (const b of builds) {
      const plan = await plannedSweep(db, sweepYaml({ name: b.name, repeat: 2 }));
      fusedHash = plan.points.find((p) => p.point.variant === 'fused')!.hash;
      for (const run of plan.runs) {
        const v = run.points[0]!.point.variant;
        await record(db, plan, run, { results: [{ variant: v, samples: runSamples(r, 50, v === 'fused' ? b.fused : 150, 0.005, 0.01) }], sourceHash: b.src, gitCommit: b.commit, finishedAt: b.at + run.rep * 1000 });
      }
    }
    const h = await loadHistory(db, { point: fusedHash.slice(0, 8) });
    expect(h.series).toHaveLength(1);
    const s = h.series[0]!;
    expect(s.variant).toBe('fused');
    expect(s.builds.map((b) => b.sourceHash)).toEqual(['aaaaaaaa1111', 'bbbbbbbb1111', 'cccccccc1111']);
    expect(s.builds.map((b) => b.step)).toEqual([null, null, 'REGRESSION']);
    expect(s.builds[2]!.change!).toBeCloseTo(0.115, 1);
    expect(s.builds[2]!.p!).toBeLessThan(0.01);

    await db.$disconnect();
    const out = await cli(['results', 'history', '--point', fusedHash], { DATABASE_URL: dbUrl });
    expect(out.exitCode, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/aaaaaaaa1111\s+c0ffee1\s+2025-01-01 00:00:00/);
    expect(out.stdout).toMatch(/REGRESSION at build cccccccc1111 \(fused/);
    expect(out.stdout).toMatch(/gives p < 0.01 \(.*\) and the median moved by more than 3%/);
    const both = await cli(['results', 'history', '--point', fusedHash, '--json'], { DATABASE_URL: dbUrl });
    expect(JSON.parse(both.stdout).series[0].builds).toHaveLength(3);
    const bad = await cli(['results', 'history', '--point', 'x'], { DATABASE_URL: dbUrl });
    expect(bad.exitCode).toBe(2);
  });
});

describe('report data', () => {
  it('draws chosen runs\' telemetry, one per job group first', async () => {
    const plan = await plannedSweep(db, sweepYaml({ name: 'tele', repeat: 3 }));
    const r = seeded(5);
    for (const run of plan.runs) {
      const v = run.points[0]!.point.variant;
      await record(db, plan, run, { results: [{ variant: v, samples: runSamples(r, 30, v === 'fused' ? 50 : 100, 0.01) }], telemetry: telemetry(1980 + run.rep) });
    }
    const rep = await buildReportData(db, plan.sweepId, { generatedAt: 'now' });
    expect(rep.data.telemetry!.map((t) => t.t_ms.length)).toEqual([20, 20, 20, 20]);
    expect(new Set(rep.data.telemetry!.slice(0, 2).map((t) => t.label.split(' ')[0]))).toEqual(new Set(['reference', 'fused']));
    expect(rep.data.speedups).toHaveLength(1);
    expect(rep.data.speedups[0]).toMatchObject({ variant: 'fused', baseline: 'reference', verdict: 'FASTER' });
    expect(rep.data.distributions).toHaveLength(1);
    expect(rep.data.history).toHaveLength(2);
    expect(renderReport(rep.data)).toContain('chart-telemetry-3');
    const chosen = await buildReportData(db, plan.sweepId, { telemetryRuns: [plan.runs.at(-1)!.id] });
    expect(chosen.data.telemetry!.map((t) => t.runId)).toEqual([plan.runs.at(-1)!.id]);
  });

  it('says there is no telemetry when no run recorded any (CPU runs)', async () => {
    const plan = await plannedSweep(db, sweepYaml({ name: 'cpu', repeat: 2 }));
    const r = seeded(6);
    for (const run of plan.runs) {
      const v = run.points[0]!.point.variant;
      await record(db, plan, run, { results: [{ variant: v, samples: runSamples(r, 30, 100, 0.01) }] });
    }
    const rep = await buildReportData(db, plan.sweepId);
    expect(rep.data.telemetry).toEqual([]);
    expect(rep.data.notes.join('\n')).toMatch(/no run of this sweep recorded telemetry/);
    expect(renderReport(rep.data)).toContain('No telemetry in this report.');
  });
});
