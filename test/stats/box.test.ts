import { describe, expect, it } from 'vitest';
import { boxStats } from '../../src/stats/box.js';

describe('boxStats', () => {
  it('puts whiskers at the last samples inside 1.5 IQR and lists the rest as outliers', () => {
    // Type 7: q1 = 3 + 0.75 = 3.75, q3 = 9 + 0.25 = 9.25, IQR 5.5 -> fences -4.5 and 17.5.
    const b = boxStats([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 30]);
    expect(b).toMatchObject({ n: 12, q1: 3.75, median: 6.5, lo: 1, hi: 14, outliers: [30] });
    expect(b.q3).toBeCloseTo(9.25, 12);
  });

  it('handles constant data', () => {
    expect(boxStats([2, 2, 2])).toMatchObject({ q1: 2, q3: 2, lo: 2, hi: 2, outliers: [] });
  });
});
