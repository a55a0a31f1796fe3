import { describe, expect, it } from 'vitest';
import { bootstrapMedianRatio, bootstrapPairedMedianRatio } from '../../src/stats/bootstrap.js';
import { StatsInputError } from '../../src/stats/errors.js';
import { median } from '../../src/stats/quantile.js';
import { mulberry32 } from '../../src/stats/rng.js';
import { latencies, seeded } from './synthetic.js';

/** The textbook algorithm (resample, sort, take the median) with the same draw order as the O(n) implementation. */
function naiveRatioCI(b: number[], c: number[], resamples: number, seed: number): [number, number] {
  const rng = mulberry32(seed);
  const draw = (xs: number[]): number[] => xs.map(() => xs[Math.floor(rng() * xs.length)] as number);
  const stats: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const mb = median(draw([...b].sort((x, y) => x - y)));
    const mc = median(draw([...c].sort((x, y) => x - y)));
    stats.push(mb / mc);
  }
  stats.sort((x, y) => x - y);
  const q = (p: number): number => {
    const h = (stats.length - 1) * p;
    const lo = Math.floor(h);
    return (stats[lo] as number) + (h - lo) * ((stats[Math.min(lo + 1, stats.length - 1)] as number) - (stats[lo] as number));
  };
  return [q(0.025), q(0.975)];
}

describe('bootstrapMedianRatio', () => {
  it('equals the naive resample-and-sort bootstrap exactly (odd and even n)', () => {
    const rng = seeded(3);
    const b = latencies(rng, 41, 110);
    const c = latencies(rng, 40, 100);
    const ci = bootstrapMedianRatio(b, c, { resamples: 500, seed: 9 });
    const [lo, hi] = naiveRatioCI(b, c, 500, 9);
    expect(ci.lo).toBeCloseTo(lo, 12);
    expect(ci.hi).toBeCloseTo(hi, 12);
    expect(ci.estimate).toBeCloseTo(median(b) / median(c), 14);
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
