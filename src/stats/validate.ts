import { StatsInputError } from './errors.js';

/**
 * Throws unless `xs` holds at least `minN` finite numbers. `what` names the
 * argument in the message ("compareSamples: baseline"), so a NaN from a broken
 * run is reported where it entered rather than as a NaN p-value later.
 */
export function assertSamples(what: string, xs: readonly number[], minN = 1): void {
  if (xs.length < minN) {
    throw new StatsInputError(`${what}: expected at least ${minN} sample(s), got ${xs.length}`);
  }
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new StatsInputError(`${what}[${i}]: expected a finite number, got ${String(v)}`);
    }
  }
}

/** Throws unless every value is finite and strictly positive (latencies, ratios). */
export function assertPositive(what: string, xs: readonly number[], minN = 1): void {
  assertSamples(what, xs, minN);
  for (let i = 0; i < xs.length; i++) {
    if ((xs[i] as number) <= 0) {
      throw new StatsInputError(`${what}[${i}]: expected a positive number, got ${String(xs[i])}`);
    }
  }
}
