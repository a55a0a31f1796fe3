/**
 * The verdicts of results/compare.ts on controlled inputs: a real injected
 * difference is called with an interval that excludes 1; identical variants
 * are SAME or UNSURE, and across many trials with run-to-run drift they are
 * called significant at about the stated rate (alpha) and not more.
 */
import { describe, expect, it } from 'vitest';
import { pairedRounds, thresholds, verdictOf } from '../../src/results/compare.js';
import { runEnvironment, smClockBand, telemetryClocks } from '../../src/results/environment.js';
import { compareSamples } from '../../src/stats/index.js';
import { parseRunEnv } from '../../src/schema/job.js';
import { TelemetrySchema, TelemetrySummarySchema } from '../../src/schema/telemetry.js';
import { fakeRun, telemetry } from './synth.js';
import { runSamples, seeded } from '../helpers/latencies.js';

const th = thresholds({ resamples: 1000 });

describe('verdicts', () => {
  it('calls a real 10% slowdown SLOWER with a CI below 1, despite 3% run drift', () => {
    const r = seeded(11);
    const base = [0, 1, 2, 3].map(() => fakeRun(runSamples(r, 40, 100, 0.03)));
    const cand = [0, 1, 2, 3].map(() => fakeRun(runSamples(r, 40, 110, 0.03)));
    const v = verdictOf(base, cand, th);
    expect(v.mode).toBe('unpaired');
    expect(v.verdict).toBe('SLOWER');
    expect(v.ciHi!).toBeLessThan(1);
    expect(v.speedup!).toBeCloseTo(100 / 110, 1);
    expect(v.pRunLevel!).toBeLessThan(0.01);
    const mirrored = verdictOf(cand, base, th);
    expect(mirrored.verdict).toBe('FASTER');
    expect(mirrored.ciLo!).toBeGreaterThan(1);
  });

  it('calls identical variants with little drift SAME', () => {
    const r = seeded(12);
    const base = [0, 1, 2, 3, 4].map(() => fakeRun(runSamples(r, 200, 100, 0.002, 0.01)));
    const cand = [0, 1, 2, 3, 4].map(() => fakeRun(runSamples(r, 200, 100, 0.002, 0.01)));
    const v = verdictOf(base, cand, th);
    expect(v.verdict).toBe('SAME');
    expect(v.ciLo!).toBeGreaterThanOrEqual(0.98);
    expect(v.ciHi!).toBeLessThanOrEqual(1.02);
  });

  it('says UNSURE with one run per variant, whatever the samples say, and why', () => {
    const r = seeded(13);
    const v = verdictOf([fakeRun(runSamples(r, 50, 100, 0))], [fakeRun(runSamples(r, 50, 50, 0))], th);
    expect(v.verdict).toBe('UNSURE');
    expect(v.reason).toMatch(/fewer than 2 runs per variant/);
    expect(v.ciLo!).toBeGreaterThan(1); // the interval is still shown
  });

  it('keeps identical variants with run-to-run drift significant at no more than about alpha', () => {
    // 5% run-to-run drift, 40 samples a run, 3 runs a side: the regime where pooled-sample tests fail.
    const trials = 150;
    let significant = 0;
    let pooledOnly = 0;
    const r = seeded(2024);
    for (let t = 0; t < trials; t++) {
      const base = [0, 1, 2].map(() => fakeRun(runSamples(r, 40, 100, 0.05)));
      const cand = [0, 1, 2].map(() => fakeRun(runSamples(r, 40, 100, 0.05)));
      const v = verdictOf(base, cand, th);
      expect(['SAME', 'UNSURE']).toContain(v.verdict === 'FASTER' || v.verdict === 'SLOWER' ? (significant++, 'UNSURE') : v.verdict);
      const naive = compareSamples(base.flatMap((x) => x.samples), cand.flatMap((x) => x.samples), { bootstrap: { resamples: 200 } });
      if (naive.verdict === 'FASTER' || naive.verdict === 'SLOWER') pooledOnly++;
    }
    // alpha = 0.01: expect ~1.5 of 150; allow chance (P(X >= 6 | Bin(150, 0.01)) < 0.02).
    expect(significant).toBeLessThanOrEqual(5);
    // The pooled-sample test alone calls most of these identical pairs different: why the run-level test exists.
    expect(pooledOnly).toBeGreaterThan(trials / 3);
  });
});

describe('paired rounds', () => {
  function interleaved(r: () => number, rounds: number, perRound: number, baseUs: number, candUs: number, drift: number) {
    const id = `il-${Math.floor(r() * 1e9)}`;
    const b: number[] = [];
    const c: number[] = [];
    const rb: number[] = [];
    const rc: number[] = [];
    for (let k = 0; k < rounds; k++) {
      // A round's drift (heat, clocks) hits both variants alike.
      const level = 1 + drift * Math.sin(k * 1.7 + r() * 6);
      for (let i = 0; i < perRound; i++) {
        b.push(baseUs * level * (1 + 0.01 * (r() - 0.5)));
        rb.push(k);
        c.push(candUs * level * (1 + 0.01 * (r() - 0.5)));
        rc.push(k);
      }
    }
    return [fakeRun(b, { runId: id, rounds: rb, interleaved: true }), fakeRun(c, { runId: id, rounds: rc, interleaved: true })] as const;
  }

  it('uses per-round medians of interleaved runs and decides a 5% difference under 20% drift', () => {
    const r = seeded(5);
    const runs = [0, 1].map(() => interleaved(r, 6, 10, 100, 95, 0.2));
    const base = runs.map((x) => x[0]);
    const cand = runs.map((x) => x[1]);
    const pr = pairedRounds(base, cand);
    expect(pr.runs).toBe(2);
    expect(pr.base).toHaveLength(12);
    const v = verdictOf(base, cand, th);
    expect(v.mode).toBe('paired');
    expect(v.rounds).toBe(12);
    expect(v.verdict).toBe('FASTER');
    expect(v.ciLo!).toBeGreaterThan(1);
    expect(v.reason).toMatch(/paired over 12 rounds of 2 interleaved run/);
  });

  it('does not call identical interleaved variants different', () => {
    const r = seeded(6);
    const runs = [0, 1].map(() => interleaved(r, 6, 10, 100, 100, 0.2));
    const v = verdictOf(runs.map((x) => x[0]), runs.map((x) => x[1]), th);
    expect(['SAME', 'UNSURE']).toContain(v.verdict);
  });
});

describe('environment', () => {
  it('reads the observed clocks from telemetry and bands them', () => {
    expect(telemetryClocks(JSON.stringify(telemetry(1987)))).toEqual({ telemetrySmMhz: 1987, smClockMhz: null });
    // The kernel's median under its name now, and under the name older workers wrote it by.
    expect(telemetryClocks(JSON.stringify({ summary: { sm_mhz: null, sm_clock_mhz: 1500 } }))).toEqual({ telemetrySmMhz: null, smClockMhz: 1500 });
    expect(telemetryClocks(JSON.stringify({ summary: { sm_mhz: null, kernel_sm_mhz: 1500 } }))).toEqual({ telemetrySmMhz: null, smClockMhz: 1500 });
    expect(telemetryClocks('not json')).toEqual({ telemetrySmMhz: null, smClockMhz: null });
    expect(telemetryClocks(null)).toEqual({ telemetrySmMhz: null, smClockMhz: null });
    expect(smClockBand(1987, 50)).toBe('1950-1999 MHz');
    expect(smClockBand(null, 50)).toBe('n/a');
    expect(smClockBand(1987, 0)).toBe('n/a');
  });

  it("reads a stored telemetry summary's former key for the kernel clock under its name now", () => {
    const stored = { samples: 3, period_ms: 50, window: 'timed', sm_mhz: { min: 1400, median: 1410, max: 1420 }, mem_mhz: null, power_w: null, temp_c: null, reasons: [] };
    expect(TelemetrySummarySchema.parse({ ...stored, kernel_sm_mhz: 1405 })).toEqual({ ...stored, sm_clock_mhz: 1405 });
    expect(TelemetrySummarySchema.parse({ ...stored, sm_clock_mhz: 1405 })).toEqual({ ...stored, sm_clock_mhz: 1405 });
    expect(TelemetrySchema.safeParse({ source: 'nvidia-smi', samples: null, summary: { ...stored, kernel_sm_mhz: null } }).success).toBe(true);
    expect(TelemetrySummarySchema.safeParse(stored).success).toBe(false);
  });

  it('takes the GPU from Run.env, then the worker, and ignores unknown keys', () => {
    const point = { backend: 'cuda' as const, clock: { lock: 1500 }, power: 'default' as const };
    const e = runEnvironment({ point, envJson: JSON.stringify({ gpu: 'NVIDIA H100', observed: { whatever: [1] } }), telemetryJson: null, workerGpu: 'other', smClockBandMhz: 50 });
    expect(e).toMatchObject({ gpu: 'NVIDIA H100', clock: 'lock:1500', power: 'default', smClockBand: 'n/a' });
    expect(runEnvironment({ point, envJson: '{"gpu":null}', telemetryJson: null, workerGpu: 'NVIDIA L4', smClockBandMhz: 50 }).gpu).toBe('NVIDIA L4');
    expect(runEnvironment({ point: { ...point, backend: 'cpu' }, envJson: null, telemetryJson: null, workerGpu: null, smClockBandMhz: 50 }).gpu).toBe('cpu');
  });

  it("reads the settings and the observed clock the worker recorded, and falls back to the point and the telemetry for older records", () => {
    const point = { backend: 'cuda' as const, clock: 'default' as const, power: 'default' as const };
    // A record as worker.ts writes it: what was asked for, applied and observed.
    const written = { backend: 'cuda', clock: { lock: 1410 }, power: { limit: 300 }, gpu: 'NVIDIA H100', gpuUuid: 'GPU-1', gpuIndex: 0, driver: '580.00', powerSource: 'unknown', requestedSmMhz: 1410, powerLimitW: 300, telemetrySmMhz: 1407, smClockMhz: 1405 };
    expect(runEnvironment({ point, envJson: JSON.stringify(written), telemetryJson: JSON.stringify(telemetry(1980)), workerGpu: null, smClockBandMhz: 50 })).toEqual({
      gpu: 'NVIDIA H100', clock: 'lock:1410', power: 'limit:300', smClockBand: '1400-1449 MHz', telemetrySmMhz: 1407, gpus: 1, topology: '',
    });
    // Several GPUs: their count and links as the worker recorded them; links of another form read as unknown.
    const two = { ...written, gpus: 2, gpuIndices: [0, 1], topology: { gpus: [0, 1], links: { '0-1': 'NV18' }, summary: 'NV18' } };
    expect(runEnvironment({ point, envJson: JSON.stringify(two), telemetryJson: null, workerGpu: null, smClockBandMhz: 50 })).toMatchObject({ gpus: 2, topology: 'NV18' });
    expect(runEnvironment({ point, envJson: JSON.stringify({ ...two, topology: 'NV18' }), telemetryJson: null, workerGpu: null, smClockBandMhz: 50 })).toMatchObject({ gpus: 2, topology: 'unknown links', telemetrySmMhz: 1407 });
    // No nvidia-smi clock in the record (no telemetry window median): the band is the telemetry's kernel clock, as before.
    const older = runEnvironment({ point, envJson: JSON.stringify({ gpu: 'NVIDIA H100' }), telemetryJson: JSON.stringify({ summary: { sm_mhz: null, kernel_sm_mhz: 1500 } }), workerGpu: null, smClockBandMhz: 50 });
    expect(older).toMatchObject({ clock: 'default', power: 'default', telemetrySmMhz: null, smClockBand: '1500-1549 MHz' });
    expect(parseRunEnv(JSON.stringify({ gpu: 'x', extra: 1 }))).toMatchObject({ gpu: 'x', clock: null, requestedSmMhz: null, extra: 1 });
    expect(parseRunEnv('{"gpu":"x","requestedSmMhz":"fast"}')).toMatchObject({ gpu: 'x', requestedSmMhz: null });
    // Records of older workers: their clock keys read under the names they have now, and are not passed on.
    const former = { gpu: 'x', lockedClockMhz: 1410, observedSmMhz: 1407, kernelSmMhz: 1405 };
    const read = parseRunEnv(JSON.stringify(former));
    expect(read).toMatchObject({ requestedSmMhz: 1410, telemetrySmMhz: 1407, smClockMhz: 1405 });
    expect(read).not.toHaveProperty('lockedClockMhz');
    expect(runEnvironment({ point, envJson: JSON.stringify(former), telemetryJson: null, workerGpu: null, smClockBandMhz: 50 })).toMatchObject({ telemetrySmMhz: 1407, smClockBand: '1400-1449 MHz' });
    // An outcome an older worker sent: the new keys read null beside the old ones, which stand in for them.
    expect(parseRunEnv(JSON.stringify({ ...former, requestedSmMhz: null, telemetrySmMhz: null, smClockMhz: null }))).toMatchObject({ requestedSmMhz: 1410, telemetrySmMhz: 1407, smClockMhz: 1405 });
    expect(parseRunEnv('{"gpu":"x","lockedClockMhz":"fast"}')).toMatchObject({ gpu: 'x', requestedSmMhz: null });
    expect(parseRunEnv('[1]')).toBeNull();
    expect(parseRunEnv('not json')).toBeNull();
  });
});
