/** Ascending copy; Float64Array sorts numerically and is faster than Array#sort with a comparator. */
export function sortedCopy(xs: readonly number[]): Float64Array {
  return Float64Array.from(xs).sort();
}

/**
 * Quantile of already-sorted data by linear interpolation between order
 * statistics (Hyndman-Fan type 7, numpy's and R's default), so numbers match
 * what people get from those tools. `q` in [0, 1]; empty input gives NaN.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (h - lo) * (b - a);
}

export function medianSorted(sorted: ArrayLike<number>): number {
  return quantileSorted(sorted, 0.5);
}

export function median(xs: readonly number[]): number {
  return medianSorted(sortedCopy(xs));
}

/** quantileSorted of unsorted data (sorts a copy). */
export function quantile(xs: readonly number[], q: number): number {
  return quantileSorted(sortedCopy(xs), q);
}
