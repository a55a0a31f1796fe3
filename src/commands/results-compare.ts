import { compareSweep, parseBaseline, type Comparison } from '../results/compare.js';
import { loadSweepResults } from '../results/load.js';
import { renderCsv, renderTable, type Cell } from '../util/table.js';
import { withDb } from './context.js';

export async function resultsCompare(opts: { sweep: string; baseline?: string; json?: boolean; csv?: boolean }): Promise<void> {
  const baseline = parseBaseline(opts.baseline);
  const cmp = await withDb(async (db) => compareSweep(await loadSweepResults(db, opts.sweep), baseline));
  if (opts.json) process.stdout.write(JSON.stringify(cmp, null, 2) + '\n');
  else if (opts.csv) process.stdout.write(renderCsv(HEADERS, rowsOf(cmp)) + '\n');
  else process.stdout.write(formatComparison(cmp) + '\n');
}

const HEADERS = ['point', 'variant', 'runs', 'samples', 'median_us', 'p10_us', 'p90_us', 'speedup'];

function rowsOf(cmp: Comparison): Cell[][] {
  return cmp.rows.map((r) => [r.point, r.variant, r.runs, r.samples, r.medianUs, r.p10Us, r.p90Us, r.speedup === null ? null : Number(r.speedup.toFixed(3))]);
}

export function formatComparison(cmp: Comparison): string {
  const lines = [
    `sweep ${cmp.sweepId}: baseline ${cmp.baseline}; speedup = baseline median / variant median (>1: faster than baseline)`,
    renderTable(HEADERS, rowsOf(cmp)),
  ];
  const failed = Object.entries(cmp.failures);
  if (failed.length) lines.push(`runs without a result: ${failed.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}
