import { boxStats } from '../../src/stats/box.js';
import { describeThresholds } from '../../src/stats/verdict.js';
import type { ReportDataInput } from '../../src/report/types.js';
import { latencies, seeded } from '../stats/synthetic.js';

/** A sweep name that tries to break out of every context it is inserted into. */
export const HOSTILE_NAME = `moe "sweep" <img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script> & co`;

/** A report with every section populated, including the awkward cases (nulls, an all-null metric, a run without readings). */
export function fullReport(): ReportDataInput {
  const rng = seeded(77);
  const t = Array.from({ length: 120 }, (_, i) => i * 50);
  return {
    title: 'moefarm report: fused vs separate',
    generatedAt: '2025-11-26T12:00:00Z',
    sweep: { id: 'sw_01HZX', name: HOSTILE_NAME },
    distributions: [
      {
        group: 'qwen3-30b-a3b T=1 bf16 · H100',
        variants: [
          { variant: 'separate', samples: latencies(rng, 300, 42) },
          { variant: 'fused', samples: latencies(rng, 300, 36) },
          { variant: 'persistent', samples: latencies(rng, 300, 33, 0.06) },
        ],
      },
      {
        group: 'qwen3-30b-a3b T=64 bf16 · H100',
        variants: [
          { variant: 'separate', samples: latencies(rng, 200, 120) },
          { variant: 'fused', samples: latencies(rng, 200, 119) },
        ],
      },
    ],
    speedups: [
      { group: 'T=1', variant: 'fused', baseline: 'separate', speedup: 1.167, lo: 1.15, hi: 1.18, verdict: 'FASTER' },
      { group: 'T=1', variant: 'persistent', baseline: 'separate', speedup: 1.27, lo: 1.22, hi: 1.31, verdict: 'FASTER' },
      { group: 'T=64', variant: 'fused', baseline: 'separate', speedup: 1.004, lo: 0.995, hi: 1.012, verdict: 'SAME' },
      { group: 'T=64', variant: 'persistent', baseline: 'separate', speedup: 0.91, lo: 0.89, hi: 0.93, verdict: 'SLOWER' },
      { group: 'T=512', variant: 'fused', baseline: 'separate', speedup: 1.03, lo: 0.97, hi: 1.09, verdict: 'UNSURE' },
    ],
    telemetry: [
      {
        runId: 'run_1',
        label: 'fused T=1',
        t_ms: t,
        sm_mhz: t.map((ms) => (ms > 3000 ? 1755 : 1980) + Math.round(10 * Math.sin(ms / 300))),
        power_w: t.map((ms, i) => (i === 40 ? null : 350 + 250 * (1 - Math.exp(-ms / 800)))),
        temp_c: t.map((ms) => 38 + 30 * (1 - Math.exp(-ms / 2500))),
      },
      {
        runId: 'run_2',
        label: 'separate T=1 (no temperature sensor)',
        t_ms: t.slice(0, 40),
        sm_mhz: t.slice(0, 40).map(() => 1980),
        power_w: t.slice(0, 40).map((ms) => 300 + ms / 20),
        temp_c: t.slice(0, 40).map(() => null),
      },
      { runId: 'run_3', label: 'cpu run', t_ms: [0, 10], sm_mhz: [null, null], power_w: [null, null], temp_c: [null, null] },
    ],
    history: [
      { point: 'qwen3 T=1', variant: 'fused', builds: ['a1', 'b2', 'c3', 'd4', 'e5'], medians: [36, 36.2, 35.9, 39.6, 39.5] },
      { point: 'qwen3 T=1', variant: 'separate', builds: ['a1', 'b2', 'c3', 'd4', 'e5'], medians: [42, 41.9, 42.1, 42, 42.2] },
      { point: 'olmoe T=8', variant: 'fused', builds: ['c3', 'd4', 'e5'], medians: [20, 20.1, 19.9] },
    ],
    notes: [describeThresholds(), 'device: NVIDIA H100 80GB HBM3 (sm_90a), driver 580.x', 'a note with <b>markup</b> & ampersands'],
  };
}

export function emptyReport(): ReportDataInput {
  return {
    title: 'empty',
    generatedAt: 'now',
    sweep: null,
    distributions: [],
    speedups: [],
    telemetry: [],
    history: [],
    notes: [],
  };
}

export interface ExpectedChart {
  id: string;
  kind: string;
  series: number;
  points: number[];
}

/** The charts fullReport() must produce, derived from the fixture's shape (box outliers from boxStats). */
export function expectedCharts(): ExpectedChart[] {
  const data = fullReport();
  const outliers = (g: number): number =>
    (data.distributions[g]?.variants ?? []).reduce((s, v) => s + boxStats(v.samples).outliers.length, 0);
  return [
    { id: 'chart-speedup', kind: 'speedup', series: 1, points: [5] },
    { id: 'chart-box-0', kind: 'box', series: 2, points: [3, outliers(0)] },
    { id: 'chart-box-1', kind: 'box', series: 2, points: [2, outliers(1)] },
    { id: 'chart-telemetry-0', kind: 'telemetry', series: 3, points: [120, 120, 120] },
    { id: 'chart-telemetry-1', kind: 'telemetry', series: 2, points: [40, 40] },
    { id: 'chart-history-0', kind: 'history', series: 2, points: [5, 5] },
    { id: 'chart-history-1', kind: 'history', series: 1, points: [3] },
  ];
}
