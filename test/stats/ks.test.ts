import { describe, expect, it } from 'vitest';
import { kolmogorovSf, ksStatistic, ksTest } from '../../src/stats/ks.js';

describe('Kolmogorov distribution', () => {
  // scipy.stats.kstwobign.sf; 1.358 and 1.628 are the classic 5% and 1% critical values.
  it.each([
    [0.3, 0.9999906941986655],
    [0.5, 0.9639452436648751],
    [1.0, 0.26999967167735456],
    [1.2, 0.11224966667072497],
    [1.36, 0.049485876755377876],
    [1.628, 0.009975522431181053],
    [2.0, 0.0006709252557796953],
    [3.0, 3.045995948942526e-8],
  ])('Q_KS(%d)', (l, want) => {
    expect(Math.abs(kolmogorovSf(l) - want) / want).toBeLessThan(1e-9);
  });

  it('is 1 at 0 and continuous across the switch of series at 1.18', () => {
    expect(kolmogorovSf(0)).toBe(1);
    expect(Math.abs(kolmogorovSf(1.18 - 1e-9) - kolmogorovSf(1.18 + 1e-9))).toBeLessThan(1e-8);
  });
});

describe('ksStatistic / ksTest', () => {
  it('computes D by hand on small samples', () => {
    // F_x - F_y at t = 2: 2/4 - 0 = 0.5; at t = 4: 1 - 2/5 = 0.6 (the maximum).
    expect(ksStatistic([1, 2, 3, 4], [3, 4, 5, 6, 7])).toBeCloseTo(0.6, 15);
    expect(ksStatistic([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(ksStatistic([1, 2], [3, 4])).toBe(1);
    // Ties across samples must not create a gap: identical multisets give D = 0.
    expect(ksStatistic([1, 1, 2, 2], [2, 1, 2, 1])).toBe(0);
  });

  it('matches scipy ks_2samp statistic and the Stephens-corrected asymptotic p', () => {
    const x = [0.61, 0.29, 0.06, 0.59, -1.73, -0.74, 0.51, -0.56, 0.39, 1.64, 0.05, -0.06, 0.64, -0.82, 0.37, 1.77, 1.09, -1.28, 2.36, 1.31, 1.05, -0.32, -0.4, 1.06, -2.47];
    const y = [2.2, 1.66, 1.38, 0.2, 0.36, 0, 0.96, 1.56, 0.44, 1.5, -0.3, 0.66, 2.31, 3.29, -0.27, -0.37, 0.38, 0.7, 0.52, -0.4, 2.59, 1.57, 1.48, 0.82, 0.14];
    const r = ksTest(x, y);
    expect(r.d).toBeCloseTo(0.28, 12); // scipy: statistic 0.28
    expect(r.en).toBe(12.5);
    expect(r.p).toBeCloseTo(0.237010099316509, 10); // kstwobign.sf((sqrt(12.5)+0.12+0.11/sqrt(12.5))*0.28)
  });
});
