/**
 * The comparison table: per point and variant, the median, p10 and p90 of
 * all raw samples of all repetitions, and the speedup against the baseline
 * (baseline median / variant median: above 1 means faster than the baseline).
 */
import { UsageError } from '../errors.js';
import { quantile, type SweepResults } from './load.js';

export interface CompareRow {
  point: string;
  variant: string;
  baseline: string;
  runs: number;
  samples: number;
  medianUs: number;
  p10Us: number;
  p90Us: number;
  speedup: number | null;
}

export interface Comparison {
  sweepId: string;
  baseline: string;
  rows: CompareRow[];
  failures: Record<string, number>;
}

export function parseBaseline(spec: string | undefined): string | null {
  if (spec === undefined) return null;
  const m = /^variant=([A-Za-z0-9][A-Za-z0-9._-]*)$/.exec(spec);
  if (!m) throw new UsageError(`--baseline: expected variant=NAME, got "${spec}"`);
  return m[1]!;
}

export function compareSweep(results: SweepResults, baselineOpt: string | null): Comparison {
  const allVariants = new Set(results.groups.flatMap((g) => [...g.variants.keys()]));
  const baseline = baselineOpt ?? results.baselineFromSpec ?? [...allVariants][0] ?? '';
  if (baselineOpt && !allVariants.has(baselineOpt)) {
    throw new UsageError(`--baseline: variant '${baselineOpt}' has no results in sweep ${results.sweepId} (has: ${[...allVariants].join(', ') || 'none'})`);
  }
  const rows: CompareRow[] = [];
  for (const g of results.groups) {
    const base = g.variants.get(baseline);
    const baseMedian = base ? quantile(sortedSamples(base), 0.5) : null;
    const variants = [...g.variants.keys()].sort((a, b) => (a === baseline ? -1 : b === baseline ? 1 : a.localeCompare(b)));
    for (const v of variants) {
      const runs = g.variants.get(v)!;
      const s = sortedSamples(runs);
      const median = quantile(s, 0.5);
      rows.push({
        point: g.label,
        variant: v,
        baseline,
        runs: runs.length,
        samples: s.length,
        medianUs: median,
        p10Us: quantile(s, 0.1),
        p90Us: quantile(s, 0.9),
        speedup: baseMedian === null ? null : baseMedian / median,
      });
    }
  }
  return { sweepId: results.sweepId, baseline, rows, failures: results.failures };
}

function sortedSamples(runs: Array<{ samples: number[] }>): number[] {
  return runs.flatMap((r) => r.samples).sort((a, b) => a - b);
}
