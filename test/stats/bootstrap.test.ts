import { describe, expect, it } from 'vitest';
import { bootstrapMedianRatio, bootstrapPairedMedianRatio, resampledMedian } from '../../src/stats/bootstrap.js';
import { StatsInputError } from '../../src/stats/errors.js';
import { ksStatistic } from '../../src/stats/ks.js';
import { median } from '../../src/stats/quantile.js';
import { mulberry32 } from '../../src/stats/rng.js';
import { latencies, seeded } from '../helpers/latencies.js';

/** Exact distribution of the median of a with-replacement resample, by enumerating all n^n index tuples. */
function exactResampleMedianDist(data: number[]): Map<number, number> {
  const n = data.length;
  const dist = new Map<number, number>();
  const idx = new Array<number>(n).fill(0);
  for (let t = 0; t < n ** n; t++) {
    let rest = t;
    for (let i = 0; i < n; i++) {
      idx[i] = rest % n;
      rest = Math.floor(rest / n);
    }
    const m = median(idx.map((i) => data[i] as number));
    dist.set(m, (dist.get(m) ?? 0) + n ** -n);
  }
  return dist;
}

/** The textbook draw: resample n values, take their median. */
function naiveResampleMedian(data: number[], rng: () => number): number {
  return median(data.map(() => data[Math.floor(rng() * data.length)] as number));
}

describe('bootstrapMedianRatio', () => {
  it('draws resample medians with exactly the naive bootstrap distribution (odd and even n)', () => {
    // Powers of two: every median (a value or the mean of two) identifies its order statistics.
    for (const data of [[1, 2, 4, 8, 16], [1, 2, 4, 8], [1, 2, 4, 8, 16, 32]]) {
      const exact = exactResampleMedianDist(data);
      const sorted = Float64Array.from(data);
      const rng = mulberry32(42);
      const draws = 200_000;
      const freq = new Map<number, number>();
      for (let i = 0; i < draws; i++) {
        const m = resampledMedian(sorted, rng);
        freq.set(m, (freq.get(m) ?? 0) + 1 / draws);
      }
      for (const m of freq.keys()) expect(exact.has(m), `impossible median ${m}`).toBe(true);
      // Binomial sd of a frequency at 200k draws is <= 0.0011; allow 4 sd.
      for (const [m, p] of exact) expect(Math.abs((freq.get(m) ?? 0) - p), `P(median=${m})`).toBeLessThan(0.0045);
    }
  });

  it('matches the naive bootstrap on realistic samples (KS distance of 5000 draws each)', () => {
    const data = latencies(seeded(3), 201, 100).sort((a, b) => a - b);
    const sorted = Float64Array.from(data);
    const fastRng = mulberry32(1);
    const naiveRng = mulberry32(2);
    const fast = Array.from({ length: 5000 }, () => resampledMedian(sorted, fastRng));
    const naive = Array.from({ length: 5000 }, () => naiveResampleMedian(data, naiveRng));
    // Two samples of 5000 from one distribution: D > 0.039 has p < 0.001.
    expect(ksStatistic(fast, naive)).toBeLessThan(0.039);
  });

  it('is deterministic for a seed, uses documented defaults, and brackets the estimate', () => {
    const rng = seeded(4);
    const b = latencies(rng, 100, 100);
    const c = latencies(rng, 100, 90);
    const a1 = bootstrapMedianRatio(b, c);
    const a2 = bootstrapMedianRatio(b, c);
    expect(a1).toEqual(a2);
    expect(a1).toMatchObject({ resamples: 2000, confidence: 0.95, seed: 1 });
    expect(bootstrapMedianRatio(b, c, { seed: 2 }).lo).not.toBe(a1.lo);
    expect(a1.lo).toBeLessThan(a1.estimate);
    expect(a1.hi).toBeGreaterThan(a1.estimate);
  });

  it('covers the true ratio about 95% of the time (>= 88/100 seeded trials)', () => {
    // True ratio of medians is exactly 1.1: same noise shape, scaled.
    let covered = 0;
    for (let t = 0; t < 100; t++) {
      const rng = seeded(1000 + t);
      const ci = bootstrapMedianRatio(latencies(rng, 60, 110), latencies(rng, 60, 100), { seed: t });
      if (ci.lo <= 1.1 && 1.1 <= ci.hi) covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(88);
  });

  it('rejects non-positive latencies and bad options', () => {
    expect(() => bootstrapMedianRatio([1, 0], [1])).toThrow(StatsInputError);
    expect(() => bootstrapMedianRatio([1], [1], { resamples: 10 })).toThrow(/resamples/);
    expect(() => bootstrapMedianRatio([1], [1], { confidence: 1 })).toThrow(/confidence/);
  });
});

describe('bootstrapPairedMedianRatio', () => {
  it('estimates the median per-round ratio, cancelling per-round drift', () => {
    // Each round runs at a different clock (x0.8..x1.2) that slows both variants alike.
    const rng = seeded(5);
    const base: number[] = [];
    const cand: number[] = [];
    for (let r = 0; r < 15; r++) {
      const drift = 0.8 + 0.4 * rng();
      base.push(110 * drift * (1 + 0.005 * (rng() - 0.5)));
      cand.push(100 * drift * (1 + 0.005 * (rng() - 0.5)));
    }
    const ci = bootstrapPairedMedianRatio(base, cand);
    expect(ci.estimate).toBeCloseTo(1.1, 2);
    expect(ci.lo).toBeGreaterThan(1.09);
    expect(ci.hi).toBeLessThan(1.11);
    // The unpaired interval on the same numbers is swamped by the drift.
    const un = bootstrapMedianRatio(base, cand);
    expect(un.hi - un.lo).toBeGreaterThan(10 * (ci.hi - ci.lo));
  });

  it('needs equal round counts', () => {
    expect(() => bootstrapPairedMedianRatio([1, 2], [1])).toThrow(/equal counts/);
  });
});
