import { describe, expect, it } from 'vitest';
import { StatsInputError } from '../../src/stats/errors.js';
import { mannWhitney, uCounts } from '../../src/stats/mannWhitney.js';
import { seeded } from '../helpers/latencies.js';
import { combinations } from './synthetic.js';

/** Exact two-sided p by enumerating every assignment of the pooled values to the two groups. */
function enumeratedP(x: number[], y: number[]): number {
  const pooled = [...x, ...y];
  const n1 = x.length;
  const n2 = y.length;
  const uOf = (a: number[], b: number[]): number => {
    let u = 0;
    for (const ai of a) for (const bj of b) u += ai > bj ? 1 : ai === bj ? 0.5 : 0;
    return u;
  };
  const u1 = uOf(x, y);
  const dev = Math.abs(u1 - (n1 * n2) / 2);
  let extreme = 0;
  let total = 0;
  for (const c of combinations(n1 + n2, n1)) {
    const set = new Set(c);
    const a = c.map((i) => pooled[i] as number);
    const b = pooled.filter((_, i) => !set.has(i));
    if (Math.abs(uOf(a, b) - (n1 * n2) / 2) >= dev - 1e-9) extreme++;
    total++;
  }
  return extreme / total;
}

describe('mannWhitney', () => {
  it('matches the scipy documentation example (exact and asymptotic)', () => {
    // scipy.stats.mannwhitneyu docs: males vs females, U = 17.
    const males = [19, 22, 16, 29, 24];
    const females = [20, 11, 17, 12];
    const exact = mannWhitney(males, females);
    expect(exact.method).toBe('exact');
    expect(exact.u1).toBe(17);
    expect(exact.u2).toBe(3);
    expect(exact.p).toBeCloseTo(0.1111111111111111, 12); // = 14/126
    const asym = mannWhitney(males, females, { method: 'asymptotic' });
    // By hand: mu = 10, sigma = sqrt(5*4*10/12) = 4.0825; z = (17 - 10 - 0.5)/sigma = 1.5922.
    expect(asym.z).toBeCloseTo(6.5 / Math.sqrt(200 / 12), 12);
    expect(asym.p).toBeCloseTo(0.11134688653314041, 10);
  });

  it('exact p equals brute-force enumeration on small samples without ties', () => {
    const rng = seeded(7);
    for (const [n1, n2] of [[3, 4], [5, 5], [4, 8], [7, 7], [2, 9]] as const) {
      const x = Array.from({ length: n1 }, () => rng());
      const y = Array.from({ length: n2 }, () => rng() + 0.2);
      const r = mannWhitney(x, y);
      expect(r.method).toBe('exact');
      expect(r.p).toBeCloseTo(enumeratedP(x, y), 12);
    }
  });

  it('the U distribution counts sum to C(n1+n2, n1) and are symmetric', () => {
    const c = uCounts(6, 9);
    let sum = 0;
    for (const v of c) sum += v;
    expect(sum).toBe(5005);
    for (let k = 0; k < c.length; k++) expect(c[k]).toBe(c[c.length - 1 - k]);
  });

  it('applies the tie correction (hand-computed and scipy)', () => {
    const x = [1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10];
    const y = [3, 4, 4, 5, 6, 7, 8, 8, 9, 11, 12, 13];
    const r = mannWhitney(x, y);
    expect(r.ties).toBe(true);
    expect(r.method).toBe('asymptotic');
    expect(r.u1).toBe(44);
    // Tie groups: 2,3,4,5,6,7,8,9 -> sizes 2,2,3,3,2,2,3,2 => sum(t^3-t) = 5*6 + 3*24 = 102.
    const sigma = Math.sqrt(((12 * 12) / 12) * (25 - 102 / (24 * 23)));
    expect(r.z).toBeCloseTo((44 - 72 + 0.5) / sigma, 12);
    expect(r.p).toBeCloseTo(0.11102260539189272, 10);
    expect(mannWhitney(x, y, { continuity: false }).p).toBeCloseTo(0.1046774223666184, 10);
  });

  it('exact p on 30 vs 30 matches scipy, and the normal approximation is close', () => {
    const x = Array.from({ length: 30 }, (_, i) => i + 1);
    const y = Array.from({ length: 30 }, (_, i) => i + 10.5);
    expect(mannWhitney(x, y).p).toBeCloseTo(0.0002749445544676173, 12);
    expect(mannWhitney(x, y, { method: 'asymptotic' }).p).toBeCloseTo(0.0003988101938466105, 12);
  });

  it('reports effect sizes oriented as P(x > y)', () => {
    const r = mannWhitney([10, 11, 12], [1, 2, 3]);
    expect(r.cl).toBe(1);
    expect(r.cliffsDelta).toBe(1);
    const s = mannWhitney([1, 2], [1, 2]);
    expect(s.cl).toBe(0.5);
    expect(s.cliffsDelta).toBe(0);
  });

  it('gives p = 1 when every value is equal, and rejects bad input', () => {
    expect(mannWhitney([5, 5, 5], [5, 5]).p).toBe(1);
    expect(() => mannWhitney([1, Number.NaN], [2])).toThrow(StatsInputError);
    expect(() => mannWhitney([], [2])).toThrow(/at least 1/);
    expect(() => mannWhitney([1, 1], [1, 2], { method: 'exact' })).toThrow(/ties/);
  });
});
