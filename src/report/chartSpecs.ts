import { boxStats } from '../stats/box.js';
import type { ReportData, TelemetryRun } from './types.js';
import { axisScale, chooseUnit, type LatencyUnit } from './units.js';

/**
 * What each chart draws, computed here in TypeScript (with the tested stats
 * code) and embedded as JSON; the page script only turns a spec into a
 * Chart.js config. Keeping the numbers out of the browser code means the
 * page cannot disagree with the rest of the farm about a quantile.
 */

export interface BoxSpec {
  id: string;
  kind: 'box';
  title: string;
  /** The chart's unit (every number below is in it), chosen from its medians. */
  unit: LatencyUnit;
  /** Log when the values drawn span more than a decade. */
  scale: 'linear' | 'logarithmic';
  /** One box per variant: "variant (n=…)". */
  labels: string[];
  boxes: Array<{ q1: number; median: number; q3: number; lo: number; hi: number; mean: number; n: number }>;
  /** Outliers as {x: label, y: value}, at most MAX_OUTLIERS_PER_BOX per box. */
  outliers: Array<{ x: string; y: number }>;
}

export interface SpeedupSpec {
  id: string;
  kind: 'speedup';
  title: string;
  labels: string[];
  speedup: number[];
  lo: number[];
  hi: number[];
  verdicts: string[];
}

export interface TelemetrySpec {
  id: string;
  kind: 'telemetry';
  title: string;
  t_ms: number[];
  /** Only metrics with at least one reading; an all-null metric would be an empty axis. */
  metrics: Array<{ key: 'sm_mhz' | 'power_w' | 'temp_c'; label: string; values: (number | null)[] }>;
}

export interface HistorySpec {
  id: string;
  kind: 'history';
  title: string;
  unit: LatencyUnit;
  scale: 'linear' | 'logarithmic';
  /** Union of the builds of all series, in order of first appearance. */
  builds: string[];
  /** Per variant: the medians, the p10-p90 band, and the builds where a step was detected. */
  series: Array<{
    variant: string;
    points: Array<{ x: string; y: number }>;
    p10: Array<{ x: string; y: number }>;
    p90: Array<{ x: string; y: number }>;
    steps: Array<{ x: string; y: number; kind: 'REGRESSION' | 'IMPROVEMENT' }>;
  }>;
}

export type ChartSpec = BoxSpec | SpeedupSpec | TelemetrySpec | HistorySpec;

/**
 * A box with 100k samples can have thousands of outliers; drawing them all
 * only makes a smear. Keep the most extreme ones, which are what a reader
 * looks for (the worst case), and say in the box label how many exist.
 */
export const MAX_OUTLIERS_PER_BOX = 200;

export function boxSpecs(data: ReportData): BoxSpec[] {
  return data.distributions.map((g, gi) => {
    const labels: string[] = [];
    const stats = g.variants.map((v) => boxStats(v.samples));
    const { unit, perUnit } = chooseUnit(stats.map((b) => b.median));
    const boxes: BoxSpec['boxes'] = [];
    const outliers: BoxSpec['outliers'] = [];
    const drawn: number[] = [];
    g.variants.forEach((v, i) => {
      const b = stats[i]!;
      const kept = extremes(b.outliers, b.median, MAX_OUTLIERS_PER_BOX);
      const label = `${v.variant} (n=${b.n}${b.outliers.length > 0 ? `, ${b.outliers.length} outliers` : ''})`;
      labels.push(label);
      const u = (x: number) => x / perUnit;
      boxes.push({ q1: u(b.q1), median: u(b.median), q3: u(b.q3), lo: u(b.lo), hi: u(b.hi), mean: u(b.mean), n: b.n });
      for (const y of kept) outliers.push({ x: label, y: u(y) });
      drawn.push(b.lo, b.hi, ...kept);
    });
    return { id: `chart-box-${gi}`, kind: 'box', title: g.group, unit, scale: axisScale(drawn), labels, boxes, outliers };
  });
}

function extremes(values: number[], centre: number, max: number): number[] {
  if (values.length <= max) return values;
  return [...values].sort((a, b) => Math.abs(b - centre) - Math.abs(a - centre)).slice(0, max);
}

export function speedupSpec(data: ReportData): SpeedupSpec | null {
  if (data.speedups.length === 0) return null;
  return {
    id: 'chart-speedup',
    kind: 'speedup',
    title: 'Speedup over baseline',
    labels: data.speedups.map((s) => `${s.group} · ${s.variant} vs ${s.baseline}`),
    speedup: data.speedups.map((s) => s.speedup),
    lo: data.speedups.map((s) => s.lo),
    hi: data.speedups.map((s) => s.hi),
    verdicts: data.speedups.map((s) => s.verdict),
  };
}

const METRICS = [
  { key: 'sm_mhz', label: 'SM clock (MHz)' },
  { key: 'power_w', label: 'power (W)' },
  { key: 'temp_c', label: 'temperature (°C)' },
] as const;

export function telemetrySpec(run: TelemetryRun, index: number): TelemetrySpec | null {
  const metrics = METRICS.filter((m) => run[m.key].some((v) => v !== null)).map((m) => ({
    key: m.key,
    label: m.label,
    values: run[m.key],
  }));
  if (metrics.length === 0 || run.t_ms.length === 0) return null;
  return { id: `chart-telemetry-${index}`, kind: 'telemetry', title: `${run.label} (${run.runId})`, t_ms: run.t_ms, metrics };
}

/**
 * One chart per point whose history has two builds or more: a series with one build is a lone dot that
 * says nothing (the report says in a sentence that there is no history yet instead).
 */
export function historySpecs(data: ReportData): HistorySpec[] {
  const byPoint = new Map<string, ReportData['history']>();
  for (const h of data.history) {
    if (h.builds.length < 2) continue;
    const list = byPoint.get(h.point) ?? [];
    list.push(h);
    byPoint.set(h.point, list);
  }
  return [...byPoint.entries()].map(([point, series], i) => {
    const builds: string[] = [];
    const seen = new Set<string>();
    for (const s of series) for (const b of s.builds) if (!seen.has(b)) (seen.add(b), builds.push(b));
    const { unit, perUnit } = chooseUnit(series.flatMap((s) => s.medians));
    const at = (s: ReportData['history'][number], col: number[]) => s.builds.map((b, j) => ({ x: b, y: col[j]! / perUnit }));
    return {
      id: `chart-history-${i}`,
      kind: 'history',
      title: point,
      unit,
      scale: axisScale(series.flatMap((s) => [...s.p10, ...s.p90])),
      builds,
      series: series.map((s) => ({
        variant: s.variant,
        points: at(s, s.medians),
        p10: at(s, s.p10),
        p90: at(s, s.p90),
        steps: s.builds.flatMap((b, j) => {
          const kind = s.steps[j];
          return kind ? [{ x: b, y: s.medians[j]! / perUnit, kind }] : [];
        }),
      })),
    };
  });
}
