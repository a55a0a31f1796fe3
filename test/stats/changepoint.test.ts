import { describe, expect, it } from 'vitest';
import { detectSteps } from '../../src/stats/changepoint.js';
import type { BuildSamples } from '../../src/stats/changepoint.js';
import { latencies, seeded } from '../helpers/latencies.js';

function series(seed: number, medians: number[]): BuildSamples[] {
  const rng = seeded(seed);
  return medians.map((m, i) => ({ build: `b${i}`, samples: latencies(rng, 100, m) }));
}

describe('detectSteps', () => {
  it('finds one injected 10% regression at the build that introduced it', () => {
    const h = series(31, [100, 100, 100, 100, 100, 110, 110, 110, 110, 110]);
    const r = detectSteps(h);
    expect(r.tests).toHaveLength(9);
    expect(r.steps).toHaveLength(1);
    const s = r.steps[0];
    expect(s).toMatchObject({ index: 5, build: 'b5', fromBuild: 'b4', toBuild: 'b4', kind: 'REGRESSION' });
    expect(s?.change).toBeCloseTo(0.1, 1);
    expect(s?.p).toBeLessThan(1e-10);
  });

  it('flags a speedup as IMPROVEMENT, and pools a window without crossing a step', () => {
    const h = series(32, [100, 100, 100, 90, 90, 90]);
    const r = detectSteps(h, { window: 3 });
    expect(r.steps.map((s) => [s.build, s.kind])).toEqual([['b3', 'IMPROVEMENT']]);
    const after = r.tests.find((t) => t.build === 'b5');
    expect(after).toMatchObject({ fromBuild: 'b3', toBuild: 'b4' }); // not back into the 100 level
  });

  it('flags nothing on flat series (20 seeded histories of 10 builds)', () => {
    let flagged = 0;
    for (let t = 0; t < 20; t++) flagged += detectSteps(series(400 + t, Array(10).fill(100) as number[])).steps.length;
    expect(flagged).toBe(0);
  });

  it('ignores significant changes smaller than the threshold', () => {
    const rng = seeded(33);
    const h = [100, 101.5].map((m, i) => ({ build: `b${i}`, samples: latencies(rng, 3000, m, 0.005) }));
    const r = detectSteps(h);
    expect(r.tests[0]?.p).toBeLessThan(0.01);
    expect(r.steps).toHaveLength(0);
  });

  it('names the offending build in input errors', () => {
    expect(() => detectSteps([{ build: 'abc', samples: [] }])).toThrow(/abc/);
  });
});
