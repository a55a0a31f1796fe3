import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ALPHA,
  comparePaired,
  compareSamples,
  decide,
  describeThresholds,
  summarize,
} from '../../src/stats/verdict.js';
import { formatP, pEquals } from '../../src/stats/format.js';
import { latencies, seeded } from '../helpers/latencies.js';

describe('compareSamples', () => {
  it('calls a 10% slower candidate SLOWER with the CI below 1', () => {
    const rng = seeded(11);
    const base = latencies(rng, 200, 100);
    const cand = latencies(rng, 200, 110);
    const c = compareSamples(base, cand);
    expect(c.verdict).toBe('SLOWER');
    expect(c.ci[1]).toBeLessThan(1);
    expect(c.speedup).toBeCloseTo(1 / 1.1, 1);
    expect(c.p_mw).toBeLessThan(1e-10);
    expect(c.p_ks).toBeLessThan(1e-10);
    expect(c.cliffs_delta).toBeLessThan(-0.8);
    expect(c).toMatchObject({ n_base: 200, n_cand: 200, mode: 'unpaired', rounds: null, p_wilcoxon: null });
    expect(c.reason).toMatch(/below 1/);
  });

  it('calls a candidate 1.10x faster FASTER with the CI above 1', () => {
    const rng = seeded(12);
    const base = latencies(rng, 200, 110);
    const cand = latencies(rng, 200, 100);
    const c = compareSamples(base, cand);
    expect(c.verdict).toBe('FASTER');
    expect(c.ci[0]).toBeGreaterThan(1);
    expect(c.ci[0]).toBeLessThan(1.1);
    expect(c.ci[1]).toBeGreaterThan(1.1);
  });

  it('never calls identical distributions FASTER/SLOWER, and the test rejects at about alpha', () => {
    // 200 seeded trials of two independent draws from the same distribution.
    // Under H0, #(p < 0.01) ~ Binomial(200, 0.01): mean 2, P(>= 7) = 0.005.
    // Bound: at most 6 significant results (alpha + 2%), and no FASTER/SLOWER
    // beyond that (they also need a CI outside 1 and a >2% speedup).
    let significant = 0;
    let decided = 0;
    let same100 = 0;
    for (let t = 0; t < 200; t++) {
      const rng = seeded(5000 + t);
      const n = t % 2 === 0 ? 100 : 30; // odd trials use the exact MW path (n <= 50, no ties)
      const c = compareSamples(latencies(rng, n, 100), latencies(rng, n, 100), { bootstrap: { resamples: 500 } });
      if (c.p_mw < DEFAULT_ALPHA) significant++;
      if (c.verdict === 'FASTER' || c.verdict === 'SLOWER') decided++;
      if (c.verdict === 'SAME' && n === 100) same100++;
      expect(['SAME', 'UNSURE', 'FASTER', 'SLOWER']).toContain(c.verdict);
    }
    expect(significant).toBeLessThanOrEqual(6);
    expect(decided).toBeLessThanOrEqual(significant);
    // With 3% noise and n = 100 the CI of the median ratio is about +-1%, inside the band.
    expect(same100).toBeGreaterThan(80);
  });

  it('calls a real but tiny (0.5%) shift SAME, noting that it is detectable', () => {
    const rng = seeded(13);
    const c = compareSamples(latencies(rng, 4000, 100, 0.01), latencies(rng, 4000, 100.5, 0.01));
    expect(c.p_mw).toBeLessThan(DEFAULT_ALPHA);
    expect(c.verdict).toBe('SAME');
    expect(c.reason).toMatch(/detectable/);
    expect(c.reason).not.toMatch(/shape/); // KS sees the shift too; that is not a shape change
  });

  it('is UNSURE on noisy small samples and on too few samples', () => {
    const rng = seeded(14);
    const noisy = compareSamples(latencies(rng, 8, 100, 0.2), latencies(rng, 8, 103, 0.2));
    expect(noisy.verdict).toBe('UNSURE');
    expect(noisy.reason).toMatch(/more samples/);
    const few = compareSamples([1, 2, 3], [1, 2, 3, 4, 5]);
    expect(few.verdict).toBe('UNSURE');
    expect(few.reason).toMatch(/too few samples/);
  });

  it('notes a shape change that the medians do not show', () => {
    // Same median, but the candidate is bimodal (half its samples +-15%).
    const rng = seeded(15);
    const base = latencies(rng, 400, 100, 0.01);
    const cand = latencies(rng, 400, 100, 0.01).map((v, i) => (i % 4 === 0 ? v * 1.15 : i % 4 === 1 ? v * 0.85 : v));
    const c = compareSamples(base, cand);
    expect(c.p_mw).toBeGreaterThanOrEqual(DEFAULT_ALPHA);
    expect(c.p_ks).toBeLessThan(DEFAULT_ALPHA);
    expect(c.reason).toMatch(/differ in shape/);
  });
});

describe('describeThresholds', () => {
  it('states the rule in one line', () => {
    expect(describeThresholds()).toBe(
      'verdict: alpha=0.01 (Mann-Whitney U), equivalence band ±2%, bootstrap 95% CI of median ratio, 2000 resamples',
    );
    expect(describeThresholds({ alpha: 0.05, band: 0.01, bootstrap: { resamples: 5000 } }, 'paired')).toBe(
      'verdict: alpha=0.05 (Wilcoxon signed-rank on per-round medians), equivalence band ±1%, paired bootstrap 95% CI of per-round median ratio, 5000 resamples',
    );
  });
});

/** Interleaved rounds: each round has its own clock factor hitting both variants. */
function rounds(seed: number, nRounds: number, baseMedian: number, candMedian: number): [number[][], number[][]] {
  const rng = seeded(seed);
  const b: number[][] = [];
  const c: number[][] = [];
  for (let r = 0; r < nRounds; r++) {
    const drift = 0.85 + 0.3 * rng();
    b.push(latencies(rng, 50, baseMedian * drift, 0.02));
    c.push(latencies(rng, 50, candMedian * drift, 0.02));
  }
  return [b, c];
}

describe('comparePaired', () => {
  it('finds a 5% speedup through round-to-round drift that defeats the unpaired comparison', () => {
    const [b, c] = rounds(21, 12, 105, 100);
    const paired = comparePaired(b, c);
    expect(paired.verdict).toBe('FASTER');
    expect(paired.mode).toBe('paired');
    expect(paired.rounds).toBe(12);
    expect(paired.p_wilcoxon).toBeCloseTo(2 / 4096, 12); // all 12 rounds favour the candidate
    expect(paired.ci[0]).toBeGreaterThan(1.02);
    expect(paired.speedup).toBeCloseTo(1.05, 1);
    const unpaired = compareSamples(b.flat(), c.flat());
    expect(unpaired.ci[1] - unpaired.ci[0]).toBeGreaterThan(3 * (paired.ci[1] - paired.ci[0]));
  });

  it('gives SAME or UNSURE for identical variants, and says when rounds are too few', () => {
    const [b, c] = rounds(22, 12, 100, 100);
    expect(['SAME', 'UNSURE']).toContain(comparePaired(b, c).verdict);
    const [b5, c5] = rounds(23, 5, 110, 100);
    const five = comparePaired(b5, c5);
    expect(five.verdict).toBe('UNSURE');
    expect(five.reason).toMatch(/cannot reach p < 0.01/);
    const [b2, c2] = rounds(24, 2, 110, 100);
    expect(comparePaired(b2, c2).reason).toMatch(/too few rounds/);
  });

  it('rejects mismatched rounds', () => {
    expect(() => comparePaired([[1]], [[1], [2]])).toThrow(/same non-zero number of rounds/);
    expect(() => comparePaired([[1], []], [[1], [2]])).toThrow(/roundsBase\[1\]/);
  });
});

describe('summarize (re-exported from verdict)', () => {
  it('is available next to the comparisons', () => {
    expect(summarize([1, 2, 3]).median).toBe(2);
  });
});

describe('decide: the one verdict rule (stats comparisons and results compare both use it)', () => {
  const at = { test: 'Mann-Whitney', alpha: 0.01, band: 0.02, confidence: 0.95, more: 'repetitions' } as const;

  it('gives each of the four words by the rule at the top of verdict.ts', () => {
    expect(decide({ ...at, p: 1e-5, speedup: 1.1, ci: [1.05, 1.15] }).verdict).toBe('FASTER');
    expect(decide({ ...at, p: 1e-5, speedup: 0.9, ci: [0.85, 0.95] }).verdict).toBe('SLOWER');
    // Significant but the CI lies inside the band: SAME, and the reason says a shift is detectable.
    const same = decide({ ...at, p: 1e-5, speedup: 1.005, ci: [1.001, 1.01] });
    expect(same.verdict).toBe('SAME');
    expect(same.reason).toMatch(/a shift is detectable, Mann-Whitney p=1\.0e-5/);
    // Significant, CI above 1, but the speedup itself within the band: UNSURE.
    expect(decide({ ...at, p: 1e-5, speedup: 1.01, ci: [1.005, 1.04] })).toMatchObject({ verdict: 'UNSURE', reason: expect.stringMatching(/within the ±2% band and the CI is not/) });
    expect(decide({ ...at, p: 1e-5, speedup: 1.05, ci: [0.99, 1.1] }).reason).toMatch(/^Mann-Whitney p=1\.0e-5 < 0\.01 but 95% CI \[0\.990, 1\.100\] includes 1$/);
  });

  it('names what more of would settle an UNSURE, and writes a bare p when no test is named', () => {
    const more = decide({ ...at, test: null, p: 0.2, speedup: 1.05, ci: [0.9, 1.2] });
    expect(more.verdict).toBe('UNSURE');
    expect(more.reason).toBe('p=0.200 >= 0.01 and 95% CI [0.900, 1.200] is wider than the ±2% band: more repetitions needed');
    expect(decide({ ...at, more: 'samples', p: 0.2, speedup: 1.05, ci: [0.9, 1.2] }).reason).toMatch(/more samples needed$/);
  });
});

describe('formatP / pEquals: the one p-value format', () => {
  it('writes three decimals, exponent form below 0.001, and <1e-300 for an underflowed tail', () => {
    expect([0.5, 0.0123, 0.001, 0.000987, 2.1e-9, 0].map(formatP)).toEqual(['0.500', '0.012', '0.001', '9.9e-4', '2.1e-9', '<1e-300']);
    expect([0.0123, 0].map(pEquals)).toEqual(['p=0.012', 'p<1e-300']);
  });
});
