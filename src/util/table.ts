/** Plain-text tables and CSV for terminal output. */
export type Cell = string | number | null | undefined;

export function renderTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map(cellText));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.every((r) => r[i] === null || r[i] === undefined || typeof r[i] === 'number'));
  const line = (cells: string[]) =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

export function renderCsv(headers: string[], rows: Cell[][]): string {
  return [csvLines([headers]), ...(rows.length ? [csvLines(rows)] : [])].join('\n');
}

/** CSV lines without a header (for output written a page at a time), joined by newlines. */
export function csvLines(rows: Cell[][]): string {
  const esc = (c: Cell) => {
    const s = cellText(c);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return rows.map((r) => r.map(esc).join(',')).join('\n');
}

function cellText(c: Cell): string {
  if (c === null || c === undefined) return '';
  // Four significant digits, never an exponent: toPrecision(4) prints 32049.7 as "3.205e+4".
  if (typeof c === 'number') return Number.isInteger(c) ? String(c) : Math.abs(c) >= 1e4 ? c.toFixed(0) : c.toPrecision(4);
  return c;
}
