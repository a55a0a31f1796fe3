import { boxStats } from '../stats/box.js';
import type { ReportData, TelemetryRun } from './types.js';

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
  unit: string;
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
  unit: string;
  /** Union of the builds of all series, in order of first appearance. */
  builds: string[];
  series: Array<{ variant: string; points: Array<{ x: string; y: number }> }>;
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
    const boxes: BoxSpec['boxes'] = [];
    const outliers: BoxSpec['outliers'] = [];
    for (const v of g.variants) {
      const b = boxStats(v.samples);
      const kept = extremes(b.outliers, b.median, MAX_OUTLIERS_PER_BOX);
      const label = `${v.variant} (n=${b.n}${b.outliers.length > 0 ? `, ${b.outliers.length} outliers` : ''})`;
      labels.push(label);
      boxes.push({ q1: b.q1, median: b.median, q3: b.q3, lo: b.lo, hi: b.hi, mean: b.mean, n: b.n });
      for (const y of kept) outliers.push({ x: label, y });
    }
    return { id: `chart-box-${gi}`, kind: 'box', title: g.group, unit: data.latencyUnit, labels, boxes, outliers };
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

export function historySpecs(data: ReportData): HistorySpec[] {
  const byPoint = new Map<string, ReportData['history']>();
  for (const h of data.history) {
    if (h.builds.length === 0) continue;
    const list = byPoint.get(h.point) ?? [];
    list.push(h);
    byPoint.set(h.point, list);
  }
  return [...byPoint.entries()].map(([point, series], i) => {
    const builds: string[] = [];
    const seen = new Set<string>();
    for (const s of series) for (const b of s.builds) if (!seen.has(b)) (seen.add(b), builds.push(b));
    return {
      id: `chart-history-${i}`,
      kind: 'history',
      title: point,
      unit: data.latencyUnit,
      builds,
      series: series.map((s) => ({
        variant: s.variant,
        points: s.builds.map((b, j) => ({ x: b, y: s.medians[j] as number })),
      })),
    };
  });
}
