/**
 * Units and scales of the report, chosen per chart and per table group from
 * the latencies shown (moe-bench reports µs): a 4.5 s run reads "4.50 s",
 * not "4,500,000 µs", and a 300 ns one "300 ns". Latencies are positive, so a
 * chart whose values span more than a decade (one slow outlier among fast
 * samples, or T=1 beside T=512) gets a log axis: on a linear one everything
 * but the outlier is flattened against the floor.
 */

export type LatencyUnit = 'ns' | 'µs' | 'ms' | 's';

/** Each unit and how many µs it holds. */
const UNITS: ReadonlyArray<{ unit: LatencyUnit; us: number }> = [
  { unit: 'ns', us: 1e-3 },
  { unit: 'µs', us: 1 },
  { unit: 'ms', us: 1e3 },
  { unit: 's', us: 1e6 },
];

export interface Scaled {
  unit: LatencyUnit;
  /** Divide a µs value by this to get the unit. */
  perUnit: number;
}

/**
 * The largest unit in which the typical value (the median of `valuesUs`) is at least 1: medians
 * then read 1 to 999 (a chart's spread may go past that; its axis ticks say so).
 */
export function chooseUnit(valuesUs: readonly number[]): Scaled {
  const v = valuesUs.filter((x) => Number.isFinite(x) && x > 0).sort((a, b) => a - b);
  const typical = v.length ? v[(v.length - 1) >> 1]! : 1;
  let pick = UNITS[0]!;
  for (const u of UNITS) if (typical >= u.us) pick = u;
  return { unit: pick.unit, perUnit: pick.us };
}

/** A latency in a unit, three significant digits, never in exponent form: "47.3 µs", "4.50 s", "1234 ms". */
export function formatLatency(us: number, s: Scaled): string {
  return `${formatNumber(us / s.perUnit)} ${s.unit}`;
}

export function formatNumber(x: number): string {
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

/** Values spanning more than this ratio (max / min) get a log axis. */
export const LOG_SCALE_SPAN = 10;

export function axisScale(values: readonly number[]): 'linear' | 'logarithmic' {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of values) {
    if (!Number.isFinite(x) || x <= 0) continue;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return hi / lo > LOG_SCALE_SPAN ? 'logarithmic' : 'linear';
}
