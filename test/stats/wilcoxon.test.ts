import { describe, expect, it } from 'vitest';
import { wilcoxonMinP, wilcoxonSignedRank } from '../../src/stats/wilcoxon.js';

/** Exact two-sided p by enumerating all 2^n sign patterns of the ranks 1..n (no ties). */
function enumeratedP(diffs: number[]): number {
  const abs = diffs.map(Math.abs);
  const order = [...abs].sort((a, b) => a - b);
  const rank = abs.map((a) => order.indexOf(a) + 1);
  const n = diffs.length;
  const total = (n * (n + 1)) / 2;
  const wPlus = diffs.reduce((s, d, i) => s + (d > 0 ? (rank[i] as number) : 0), 0);
  const dev = Math.abs(wPlus - total / 2);
  let extreme = 0;
  for (let mask = 0; mask < 1 << n; mask++) {
    let w = 0;
    for (let i = 0; i < n; i++) if (mask & (1 << i)) w += i + 1;
    if (Math.abs(w - total / 2) >= dev - 1e-9) extreme++;
  }
  return extreme / 2 ** n;
}

describe('wilcoxonSignedRank', () => {
  it('reproduces the Wikipedia worked example (ties and a zero, normal approximation)', () => {
    // Pairs (x, y) from https://en.wikipedia.org/wiki/Wilcoxon_signed-rank_test
    const x = [125, 115, 130, 140, 140, 115, 140, 125, 140, 135];
    const y = [110, 122, 125, 120, 140, 124, 123, 137, 135, 145];
    const r = wilcoxonSignedRank(x.map((v, i) => v - (y[i] as number)));
    // By hand: d = 15,-7,5,20,0,-9,17,-12,5,-10; the zero is dropped (n = 9);
    // |d| ranks 5,5 -> 1.5 each; W+ = 1.5+1.5+7+8+9 = 27, W- = 3+4+5+6 = 18.
    expect(r.n).toBe(9);
    expect(r.zeros).toBe(1);
    expect(r.wPlus).toBe(27);
    expect(r.wMinus).toBe(18);
    expect(r.t).toBe(18);
    expect(r.method).toBe('asymptotic');
    // var = 9*10*19/24 - (2^3-2)/48 = 71.125; z = (27 - 22.5 - 0.5)/sqrt(71.125)
    expect(r.z).toBeCloseTo(4 / Math.sqrt(71.125), 12);
    expect(r.p).toBeCloseTo(0.6352893188352069, 10); // scipy.stats.wilcoxon(correction=True)
  });

  it('exact p matches enumeration of sign patterns and scipy', () => {
    const d = [1.5, -0.3, 2.2, 0.7, -1.1, 3.1, 0.4, 2.9];
    const r = wilcoxonSignedRank(d);
    expect(r.method).toBe('exact');
    expect(r.t).toBe(5);
    expect(r.p).toBeCloseTo(0.078125, 14); // scipy: 20/256
    expect(r.p).toBeCloseTo(enumeratedP(d), 14);
    const all = [0.3, 0.1, 0.7, 0.2, 0.9, 1.4, 0.5, 0.6, 1.1, 0.8];
    expect(wilcoxonSignedRank(all).p).toBeCloseTo(enumeratedP(all), 14);
    expect(wilcoxonSignedRank(all).p).toBeCloseTo(2 / 1024, 14);
  });

  it('handles all-zero differences and states the smallest reachable p', () => {
    expect(wilcoxonSignedRank([0, 0, 0]).p).toBe(1);
    expect(wilcoxonMinP(7)).toBeGreaterThan(0.01);
    expect(wilcoxonMinP(8)).toBeLessThan(0.01);
  });
});
