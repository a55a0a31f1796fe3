import { boxStats } from '../../src/stats/box.js';
import { describeThresholds } from '../../src/stats/verdict.js';
import type { ReportDataInput } from '../../src/report/types.js';
import { latencies, seeded } from '../helpers/latencies.js';

/** A sweep name that tries to break out of every context it is inserted into. */
export const HOSTILE_NAME = `moe "sweep" <img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script> & co`;

/** A latency row as report-data makes them (µs). */
function lat(group: string, variant: string, medianUs: number, p10Us: number, p90Us: number, runs: number, excluded: number, speedup: number | null, verdict: string, baseline = 'separate') {
  return { group, variant, baseline: speedup === 1 ? '' : baseline, medianUs, p10Us, p90Us, runs, excluded, speedup, verdict };
}

/**
 * A report with every section populated, including the awkward cases (nulls, an all-null metric, a run
 * without readings), latencies from hundreds of ns to seconds, a distribution whose slow outliers span
 * three decades, failed runs, and history with spread and steps.
 */
export function fullReport(): ReportDataInput {
  const rng = seeded(77);
  const t = Array.from({ length: 120 }, (_, i) => i * 50);
  // Mostly ~40 µs, a few runs preempted to ~40 ms: on a linear axis every box would be a line at the floor.
  const spiky = latencies(rng, 300, 40).map((v, i) => (i % 50 === 7 ? v * 1000 : v));
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
      {
        group: 'tiny T=1 bf16 · busy host',
        variants: [
          { variant: 'separate', samples: spiky },
          { variant: 'fused', samples: latencies(rng, 300, 36) },
        ],
      },
      {
        group: 'cpu reference T=512',
        variants: [{ variant: 'reference', samples: latencies(rng, 50, 4.5e6) }],
      },
    ],
    latencies: [
      lat('T=1', 'separate', 42.04, 40.1, 44.9, 3, 0, 1, 'BASELINE'),
      lat('T=1', 'fused', 36.02, 34.5, 38.8, 3, 1, 1.167, 'FASTER'),
      lat('T=512', 'reference', 4.5e6, 4.31e6, 4.77e6, 2, 0, null, 'NO-BASELINE'),
      lat('tiny T=1', 'fused', 0.3124, 0.301, 0.348, 5, 0, 0.91, 'SLOWER (paired)'),
    ],
    failures: [
      { runId: 's01-abc-r0', status: 'crashed', reason: 'the binary crashed (exit code 3): CUDA error: an illegal memory access', point: 'qwen3-30b-a3b T=64 bf16 persistent', worker: 'h1/h100/gpu0' },
      { runId: 's01-abd-r1', status: 'timeout', reason: "killed after the job's timeout of 60 s", point: 'qwen3-30b-a3b T=512 bf16 persistent', worker: null },
    ],
    failuresTotal: 5,
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
      history('qwen3 T=1', 'fused', ['a1', 'b2', 'c3', 'd4', 'e5'], [36, 36.2, 35.9, 39.6, 39.5], [null, null, null, 'REGRESSION', null]),
      history('qwen3 T=1', 'separate', ['a1', 'b2', 'c3', 'd4', 'e5'], [42, 41.9, 42.1, 42, 42.2]),
      history('olmoe T=8', 'fused', ['c3', 'd4', 'e5'], [2000, 2010, 1500], [null, null, 'IMPROVEMENT']),
      // One build only: no chart for it (a lone dot says nothing).
      history('olmoe T=64', 'fused', ['e5'], [80]),
    ],
    notes: [describeThresholds(), 'device: NVIDIA H100 80GB HBM3 (sm_90a), driver 580.x', 'a note with <b>markup</b> & ampersands'],
  };
}

/** A history series with a p10-p90 band of ±5% around each median (µs). */
export function history(point: string, variant: string, builds: string[], medians: number[], steps: Array<'REGRESSION' | 'IMPROVEMENT' | null> = medians.map(() => null)) {
  return { point, variant, builds, medians, p10: medians.map((m) => m * 0.95), p90: medians.map((m) => m * 1.05), steps };
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
  datasets?: string[];
}

/** The charts fullReport() must produce, derived from the fixture's shape (box outliers from boxStats). */
export function expectedCharts(): ExpectedChart[] {
  const data = fullReport();
  const outliers = (g: number): number =>
    (data.distributions[g]?.variants ?? []).reduce((s, v) => s + boxStats(v.samples).outliers.length, 0);
  const band = (v: string, n: number, steps: number) => ({ labels: [`${v} p10`, `${v} p10-p90`, `${v} median`, `${v} steps`], points: [n, n, n, steps] });
  const q1f = band('fused', 5, 1);
  const q1s = band('separate', 5, 0);
  const o8 = band('fused', 3, 1);
  return [
    { id: 'chart-speedup', kind: 'speedup', series: 1, points: [5] },
    { id: 'chart-box-0', kind: 'box', series: 2, points: [3, outliers(0)] },
    { id: 'chart-box-1', kind: 'box', series: 2, points: [2, outliers(1)] },
    { id: 'chart-box-2', kind: 'box', series: 2, points: [2, outliers(2)] },
    { id: 'chart-box-3', kind: 'box', series: 2, points: [1, outliers(3)] },
    { id: 'chart-telemetry-0', kind: 'telemetry', series: 3, points: [120, 120, 120] },
    { id: 'chart-telemetry-1', kind: 'telemetry', series: 2, points: [40, 40] },
    { id: 'chart-history-0', kind: 'history', series: 8, points: [...q1f.points, ...q1s.points], datasets: [...q1f.labels, ...q1s.labels] },
    { id: 'chart-history-1', kind: 'history', series: 4, points: o8.points, datasets: o8.labels },
  ];
}
