/**
 * A small seeded PRNG so bootstrap intervals (and test data) are reproducible:
 * the same inputs and seed give the same CI on every machine, which keeps
 * reports diffable. mulberry32: 32-bit state, period 2^32, passes the
 * statistical tests that matter for resampling (not for cryptography).
 */
export type Rng = () => number;

/** Returns a function yielding uniform floats in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box-Muller; the second value is discarded for simplicity). */
export function normalDraw(rng: Rng): number {
  let u = rng();
  while (u === 0) u = rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Gamma(shape, 1) draw for shape >= 1 (Marsaglia and Tsang 2000: a squeeze
 * on a transformed normal; ~1.03 normal draws per sample on average).
 */
export function gammaDraw(rng: Rng, shape: number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = normalDraw(rng);
    const t = 1 + c * x;
    if (t <= 0) continue;
    const v = t * t * t;
    const u = rng();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) draw for a, b >= 1, as Ga / (Ga + Gb). */
export function betaDraw(rng: Rng, a: number, b: number): number {
  const x = gammaDraw(rng, a);
  return x / (x + gammaDraw(rng, b));
}
