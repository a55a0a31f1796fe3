/**
 * How a p-value is written wherever one is shown (verdict reasons, the compare
 * and history tables, report notes): three decimals, or one significant digit
 * in exponent form below 0.001, or "<1e-300" where the normal tail underflows
 * to 0.
 */
export function formatP(p: number): string {
  return p === 0 ? '<1e-300' : p < 1e-3 ? p.toExponential(1) : p.toFixed(3);
}

/** "p=0.003", "p=2.1e-9", or "p<1e-300". */
export function pEquals(p: number): string {
  return p === 0 ? `p${formatP(p)}` : `p=${formatP(p)}`;
}
