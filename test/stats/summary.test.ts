import { describe, expect, it } from 'vitest';
import { StatsInputError } from '../../src/stats/errors.js';
import { summarize } from '../../src/stats/summary.js';

describe('summarize', () => {
  it('computes type-7 quantiles, sample stdev and MAD by hand', () => {
    const s = summarize([5, 1, 4, 2, 3, 10, 6, 8, 7, 9]);
    expect(s).toMatchObject({ n: 10, min: 1, max: 10, median: 5.5, mean: 5.5 });
    expect(s.p10).toBeCloseTo(1.9, 12); // h = 9*0.1 = 0.9 -> 1 + 0.9*(2-1)
    expect(s.p90).toBeCloseTo(9.1, 12);
    expect(s.p99).toBeCloseTo(9.91, 12);
    expect(s.stdev).toBeCloseTo(Math.sqrt(82.5 / 9), 12); // sum of squares about 5.5 is 82.5
    expect(s.mad).toBe(2.5); // |x - 5.5| = .5,.5,1.5,1.5,...,4.5,4.5 -> median 2.5
  });

  it('handles one sample and keeps precision for a tiny spread at a high level', () => {
    expect(summarize([3])).toMatchObject({ n: 1, min: 3, max: 3, median: 3, stdev: 0, mad: 0 });
    const s = summarize([1e9 + 0.1, 1e9 + 0.2, 1e9 + 0.3]);
    expect(s.stdev).toBeCloseTo(0.1, 6);
  });

  it('rejects empty and non-finite input', () => {
    expect(() => summarize([])).toThrow(StatsInputError);
    expect(() => summarize([1, Number.POSITIVE_INFINITY])).toThrow(/\[1\]/);
  });
});
