import { mulberry32, normalDraw } from '../../src/stats/rng.js';
import type { Rng } from '../../src/stats/rng.js';

/**
 * Kernel-latency-like samples: lognormal noise around `median` (sigma as a
 * fraction) plus a 3% tail of slow outliers (+30%), like preemptions or a
 * clock dip. Seeded, so every test run sees the same numbers.
 */
export function latencies(rng: Rng, n: number, median: number, sigma = 0.03): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let v = median * Math.exp(sigma * normalDraw(rng));
    if (rng() < 0.03) v *= 1.3;
    out.push(v);
  }
  return out;
}

export function seeded(seed: number): Rng {
  return mulberry32(seed);
}

/** All k-subsets of 0..n-1 (for exact enumeration in tests). */
export function* combinations(n: number, k: number): Generator<number[]> {
  const idx = Array.from({ length: k }, (_, i) => i);
  if (k > n) return;
  for (;;) {
    yield [...idx];
    let i = k - 1;
    while (i >= 0 && idx[i] === n - k + i) i--;
    if (i < 0) return;
    idx[i] = (idx[i] as number) + 1;
    for (let j = i + 1; j < k; j++) idx[j] = (idx[j - 1] as number) + 1;
  }
}
