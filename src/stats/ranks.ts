/**
 * Ranks 1..n with ties given their average rank (the "midrank" convention
 * both rank tests assume), plus the tie term sum(t^3 - t) over tie groups
 * that the normal approximations subtract from the variance.
 */
export interface Ranking {
  ranks: Float64Array;
  /** sum over tie groups of (t^3 - t); 0 when all values are distinct. */
  tieTerm: number;
}

export function rankWithTies(values: ArrayLike<number>): Ranking {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => (values[a] as number) - (values[b] as number));
  const ranks = new Float64Array(n);
  let tieTerm = 0;
  let i = 0;
  while (i < n) {
    let j = i + 1;
    const v = values[order[i] as number] as number;
    while (j < n && values[order[j] as number] === v) j++;
    const t = j - i;
    const avg = (i + 1 + j) / 2; // mean of ranks i+1..j
    for (let k = i; k < j; k++) ranks[order[k] as number] = avg;
    if (t > 1) tieTerm += t * t * t - t;
    i = j;
  }
  return { ranks, tieTerm };
}
