import { describe, expect, it } from 'vitest';
import { erfc, normalCdf, normalSf, twoSidedP } from '../../src/stats/normal.js';

// Reference values from scipy.special.erfc / scipy.stats.norm (scipy 1.17).
const ERFC: Array<[number, number]> = [
  [0.1, 0.8875370839817152],
  [1, 0.15729920705028516],
  [2.4, 0.0006885138966450789],
  [2.6, 0.000236034416529349],
  [5, 1.5374597944280347e-12],
  [10, 2.0884875837625446e-45],
  [26, 5.663192408856145e-296],
];

describe('erfc', () => {
  it.each(ERFC)('erfc(%d) matches scipy to 1e-12 relative', (x, want) => {
    expect(Math.abs(erfc(x) - want) / want).toBeLessThan(1e-12);
  });

  it('is 2 - erfc(-x) for negative x and 1 at 0', () => {
    expect(erfc(0)).toBe(1);
    expect(erfc(-1)).toBeCloseTo(2 - 0.15729920705028516, 14);
  });

  it('gives normal tails far out and symmetric two-sided p', () => {
    expect(Math.abs(normalSf(8) - 6.22096057427174e-16) / 6.22096057427174e-16).toBeLessThan(1e-10);
    expect(normalCdf(0)).toBe(0.5);
    expect(twoSidedP(1.959963984540054)).toBeCloseTo(0.05, 12);
    expect(twoSidedP(-1.959963984540054)).toBeCloseTo(0.05, 12);
    expect(twoSidedP(0)).toBe(1);
  });
});
