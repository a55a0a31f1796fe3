import { compareSweep, parseBaseline, type Comparison, type CompareRow } from '../results/compare.js';
import { mergeSides, sweepsByLabel } from '../results/across.js';
import { armLabel, loadSweepResults, type LoadOptions } from '../results/load.js';
import { UsageError } from '../errors.js';
import { formatP } from '../stats/index.js';
import { renderCsv, renderTable, type Cell } from '../util/table.js';
import { withDb } from './context.js';

export interface ResultsCompareOptions {
  /** One of sweep or label names what is compared. */
  sweep?: string;
  label?: string;
  /** Compare against this sweep, or the sweeps with this label: each point and variant against the same in it. */
  against?: string;
  againstLabel?: string;
  baseline?: string;
  json?: boolean;
  csv?: boolean;
  /** The seed's table: one row per condition (environment) and variant, baseline and variant in ms. */
  byCondition?: boolean;
  includeFlagged?: boolean;
  /** --clock-band: width of the SM clock bands, MHz (0: do not split by SM clock); LoadOptions.smClockBandMhz. */
  clockBand?: number;
  /** Show the energy columns even where no result has energy (they show "-"); they are shown anyway when one has. */
  energy?: boolean;
}

export async function resultsCompare(opts: ResultsCompareOptions): Promise<void> {
  const baseline = parseBaseline(opts.baseline);
  if (opts.against !== undefined && opts.against === opts.sweep) throw new UsageError(`--against: sweep ${opts.against} is the sweep compared; name another`);
  if (opts.againstLabel !== undefined && opts.againstLabel === opts.label) throw new UsageError(`--against-label: ${opts.label} is the label compared; name another`);
  const load: LoadOptions = opts.clockBand === undefined ? {} : { smClockBandMhz: opts.clockBand };
  const cmp = await withDb(async (db) => {
    const across = opts.against !== undefined || opts.againstLabel !== undefined || opts.label !== undefined;
    if (!across) return compareSweep(await loadSweepResults(db, opts.sweep!, load), baseline, { includeFlagged: opts.includeFlagged ?? false });
    const side = opts.label !== undefined ? { tag: opts.label, results: await sweepsByLabel(db, opts.label, load) } : { tag: opts.sweep!, results: [await loadSweepResults(db, opts.sweep!, load)] };
    const against =
      opts.againstLabel !== undefined
        ? { tag: opts.againstLabel, results: await sweepsByLabel(db, opts.againstLabel, load) }
        : opts.against !== undefined
          ? { tag: opts.against, results: [await loadSweepResults(db, opts.against, load)] }
          : null;
    const c = compareSweep(mergeSides(side, against), against ? null : baseline, { includeFlagged: opts.includeFlagged ?? false });
    return against ? { ...c, armsAre: opts.againstLabel !== undefined ? ('label' as const) : ('sweep' as const) } : c;
  }, { mustExist: true });
  if (opts.json) process.stdout.write(JSON.stringify(cmp, null, 2) + '\n');
  else if (opts.csv) process.stdout.write((opts.byCondition ? conditionCsv(cmp) : comparisonCsv(cmp)) + '\n');
  else process.stdout.write((opts.byCondition ? formatByCondition(cmp) : formatComparison(cmp, { energy: opts.energy ?? false })) + '\n');
}

/** CSV keeps full precision (the table's 4 significant digits are for eyes). */
const full = (rows: Cell[][]): Cell[][] => rows.map((r) => r.map((c) => (typeof c === 'number' ? String(c) : c)));
const r3 = (x: number | null): number | null => (x === null ? null : Number(x.toFixed(3)));
const ci = (r: CompareRow): string => (r.ciLo === null || r.ciHi === null ? '' : `[${r.ciLo.toFixed(3)}, ${r.ciHi.toFixed(3)}]`);
const pText = (p: number | null): string => (p === null ? '' : formatP(p));

function singleEnv(cmp: Comparison): string | null {
  const envs = new Set(cmp.rows.map((r) => r.env));
  return envs.size === 1 ? [...envs][0]! : null;
}

const TABLE_HEADERS = ['point', 'variant', 'runs', 'excl', 'samples', 'median_us', 'p10_us', 'p90_us', 'iqr_%', 'speedup', 'ci95', 'p', 'verdict'];

/** "baseline reference", "baseline build=base" (the same variant of build base), or across sweeps "against sweep s12…". */
function baselineText(cmp: Comparison): string {
  if (cmp.armsAre) return `against ${cmp.armsAre} ${cmp.baseline} (each point and variant against the same point and variant there; runs of two sweeps never pair)`;
  return cmp.baselineBy === 'build' ? `baseline build=${cmp.baseline} (each variant against the same variant of build ${cmp.baseline})` : `baseline ${cmp.baseline}`;
}

/** Energy per forward in mJ and mean power in W beside time, "-" where the run measured none (cpu). */
export const ENERGY_HEADERS = ['mJ/fwd', 'W'];
export function energyCells(r: Pick<CompareRow, 'joulesPerForward' | 'meanPowerW'>): Cell[] {
  return [r.joulesPerForward === null ? '-' : r.joulesPerForward * 1000, r.meanPowerW === null ? '-' : r.meanPowerW];
}
/** Energy columns: asked for, or some row has a figure. */
export function showEnergy(cmp: Comparison, asked = false): boolean {
  return asked || cmp.rows.some((r) => r.energyRuns > 0);
}

export function formatComparison(cmp: Comparison, opts: { energy?: boolean } = {}): string {
  const env = singleEnv(cmp);
  const builds = cmp.builds.length > 1;
  const energy = showEnergy(cmp, opts.energy);
  const headers = [...(env === null ? ['point', 'env'] : ['point']), ...(builds ? [cmp.armsAre ?? 'build'] : []), ...TABLE_HEADERS.slice(1, -1), ...(energy ? ENERGY_HEADERS : []), 'verdict'];
  const rows = cmp.rows.map((r): Cell[] => [
    r.point,
    ...(env === null ? [r.env] : []),
    ...(builds ? [r.build] : []),
    r.variant,
    r.runs,
    r.excludedRuns,
    r.samples,
    r.medianUs,
    r.p10Us,
    r.p90Us,
    Number((r.iqrRel * 100).toFixed(1)),
    r3(r.speedup),
    ci(r),
    pText(r.p),
    ...(energy ? energyCells(r) : []),
    r.verdict + (r.mode === 'paired' ? ' (paired)' : ''),
  ]);
  const lines = [
    `sweep ${cmp.sweepId} (${cmp.name}): ${baselineText(cmp)}; speedup = baseline median / variant median (>1: faster than baseline)` +
      (env === null ? '' : `\nenvironment: ${env}`),
    renderTable(headers, rows),
  ];
  lines.push(...footer(cmp));
  return lines.join('\n');
}

function footer(cmp: Comparison): string[] {
  const lines: string[] = [];
  const why = cmp.rows.filter((r) => r.verdict === 'UNSURE' || r.verdict === 'NO-BASELINE');
  for (const r of why) lines.push(`  ${r.verdict} ${r.point} ${armLabel(r.build, r.variant, cmp.builds)}${singleEnv(cmp) === null ? ` [${r.env}]` : ''}: ${r.reason}`);
  lines.push(cmp.thresholds.text);
  lines.push(
    cmp.includeFlagged
      ? `flagged runs (throttled, clock-mismatch) included: ${cmp.excludedFlagged === 0 ? 'none' : 'yes'}`
      : `flagged runs (throttled, clock-mismatch) excluded: ${cmp.excludedFlagged}${cmp.excludedFlagged ? ' (--include-flagged to use them)' : ''}`,
  );
  const failed = Object.entries(cmp.failures);
  if (failed.length) lines.push(`runs without a result: ${failed.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (cmp.queued) lines.push(`runs still waiting for an outcome: ${cmp.queued}`);
  return lines;
}

const CSV_HEADERS = [
  'point', 'gpu', 'clock', 'power', 'sm_clock_band', 'build', 'variant', 'baseline_by', 'baseline', 'runs', 'excluded_runs', 'samples', 'median_us', 'p10_us', 'p90_us', 'iqr_rel',
  'speedup', 'ci_lo', 'ci_hi', 'mode', 'p', 'p_mann_whitney', 'p_run_level', 'verdict', 'reason', 'joules_per_forward', 'mean_power_w', 'energy_runs',
];

function comparisonCsv(cmp: Comparison): string {
  return renderCsv(
    CSV_HEADERS,
    full(cmp.rows.map((r) => [
      r.point, r.gpu, r.clock, r.power, r.smClockBand, r.build, r.variant, cmp.armsAre ?? cmp.baselineBy, r.baseline, r.runs, r.excludedRuns, r.samples, r.medianUs, r.p10Us, r.p90Us, r.iqrRel,
      r.speedup, r.ciLo, r.ciHi, r.mode, r.p, r.pMannWhitney, r.pRunLevel, r.verdict, r.reason, r.joulesPerForward, r.meanPowerW, r.energyRuns,
    ])),
  );
}

/** One row per condition and candidate variant: the seed's table (baseline ms, variant ms, speedup [CI]). */
interface ConditionRow {
  condition: string;
  point: string;
  build: string;
  baseline: string;
  baselineMs: number | null;
  variant: string;
  variantMs: number;
  row: CompareRow;
}

function conditionRows(cmp: Comparison): ConditionRow[] {
  const out: ConditionRow[] = [];
  for (const r of cmp.rows) {
    if (r.verdict === 'BASELINE') continue;
    // The row's own baseline arm: the same variant of the baseline build, or the baseline variant of the same build.
    const base = cmp.rows.find(
      (b) => b.verdict === 'BASELINE' && b.point === r.point && b.env === r.env && (cmp.baselineBy === 'build' ? b.variant === r.variant : b.build === r.build),
    );
    out.push({
      condition: `${r.gpu} clock=${r.clock} power=${r.power}${r.smClockBand === 'n/a' ? '' : ` sm=${r.smClockBand}`}`,
      point: r.point,
      build: r.build,
      baseline: r.baseline,
      baselineMs: base ? base.medianUs / 1000 : null,
      variant: r.variant,
      variantMs: r.medianUs / 1000,
      row: r,
    });
  }
  return out.sort((a, b) => a.condition.localeCompare(b.condition) || a.point.localeCompare(b.point, 'en', { numeric: true }) || a.variant.localeCompare(b.variant) || a.build.localeCompare(b.build));
}

export function formatByCondition(cmp: Comparison): string {
  const builds = cmp.builds.length > 1;
  const rows = conditionRows(cmp).map((c): Cell[] => [
    c.condition, c.point, ...(builds ? [c.build] : []), c.variant, c.baselineMs === null ? null : Number(c.baselineMs.toFixed(4)), Number(c.variantMs.toFixed(4)),
    r3(c.row.speedup), ci(c.row), c.row.verdict,
  ]);
  return [
    `sweep ${cmp.sweepId} (${cmp.name}) by condition: ${baselineText(cmp)}; medians in ms; speedup = baseline / variant`,
    renderTable(['condition', 'point', ...(builds ? [cmp.armsAre ?? 'build'] : []), 'variant', `${cmp.baseline}_ms`, 'variant_ms', 'speedup', 'ci95', 'verdict'], rows),
    ...footer(cmp),
  ].join('\n');
}

function conditionCsv(cmp: Comparison): string {
  return renderCsv(
    ['gpu', 'clock', 'power', 'sm_clock_band', 'point', 'build', 'baseline_by', 'baseline', 'baseline_ms', 'variant', 'variant_ms', 'speedup', 'ci_lo', 'ci_hi', 'verdict'],
    full(conditionRows(cmp).map((c) => [
      c.row.gpu, c.row.clock, c.row.power, c.row.smClockBand, c.point, c.build, cmp.armsAre ?? cmp.baselineBy, c.baseline, c.baselineMs, c.variant, c.variantMs, c.row.speedup, c.row.ciLo, c.row.ciHi, c.row.verdict,
    ])),
  );
}
