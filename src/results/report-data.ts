/**
 * The data of a sweep's HTML report (report/html.ts renderReport), read from
 * the database: absolute latencies per point, build and variant beside the
 * speedups with their intervals and verdicts (both from results/compare.ts),
 * latency distributions, the runs that ended without a result (id, outcome,
 * reason), the telemetry timeline of a few chosen runs, and the history of
 * the sweep's points across builds with its spread and steps.
 */
import type { Db } from '../db/client.js';
import type { FailureRow, ReportDataInput } from '../report/types.js';
import { RunParamsSchema } from '../schema/job.js';
import { TelemetrySchema } from '../schema/telemetry.js';
import { pEquals } from '../stats/index.js';
import { compareSweep, type Comparison } from './compare.js';
import { loadHistory, type History } from './history.js';
import { armLabel, loadSweepResults, pointLabel, type Arm, type Baseline, type SweepResults } from './load.js';

export interface ReportOptions {
  baseline?: Baseline | null;
  includeFlagged?: boolean;
  /** Runs whose telemetry to draw; default: up to `maxTelemetry` runs of the sweep that have telemetry, one per job group first. */
  telemetryRuns?: string[];
  maxTelemetry?: number;
  /** Width of the SM clock bands, MHz (results/load.ts LoadOptions). */
  smClockBandMhz?: number;
  /** Shown in the header; default now. */
  generatedAt?: string;
  /** Most failed runs listed (default 200); the report says how many more there are. */
  maxFailures?: number;
}

export interface SweepReport {
  data: ReportDataInput;
  comparison: Comparison;
  history: History;
}

export async function buildReportData(db: Db, sweepId: string, opts: ReportOptions = {}): Promise<SweepReport> {
  const results = await loadSweepResults(db, sweepId, opts.smClockBandMhz === undefined ? {} : { smClockBandMhz: opts.smClockBandMhz });
  const cmp = compareSweep(results, opts.baseline ?? null, { includeFlagged: opts.includeFlagged ?? false });
  const singleEnv = new Set(results.groups.map((g) => g.envLabel)).size <= 1;
  // The baseline's arms first.
  const rank = (a: Arm) => ((cmp.baselineBy === 'build' ? a.build : a.variant) === cmp.baseline ? 0 : 1);
  const groupName = (point: string, env: string) => (singleEnv ? point : `${point} · ${env}`);

  const distributions = [...results.groups]
    .sort((a, b) => a.label.localeCompare(b.label, 'en', { numeric: true }) || a.envLabel.localeCompare(b.envLabel))
    .map((g) => ({
      group: groupName(g.label, g.envLabel),
      variants: [...g.arms.values()]
        .sort((a, b) => rank(a) - rank(b) || cmp.builds.indexOf(a.build) - cmp.builds.indexOf(b.build) || a.variant.localeCompare(b.variant))
        .map((arm) => ({
          variant: armLabel(arm.build, arm.variant, cmp.builds),
          samples: arm.runs.filter((r) => cmp.includeFlagged || r.flags.length === 0).flatMap((r) => r.samples),
        }))
        .filter((v) => v.samples.length > 0),
    }))
    .filter((g) => g.variants.length > 0);

  const speedups = cmp.rows
    .filter((r) => r.verdict !== 'BASELINE' && r.speedup !== null && r.ciLo !== null && r.ciHi !== null)
    .map((r) => ({
      group: groupName(r.point, r.env),
      variant: armLabel(r.build, r.variant, cmp.builds),
      baseline: cmp.baselineBy === 'build' ? armLabel(r.baseline, r.variant, cmp.builds) : armLabel(r.build, r.baseline, cmp.builds),
      speedup: r.speedup!,
      lo: r.ciLo!,
      hi: r.ciHi!,
      verdict: r.mode === 'paired' ? `${r.verdict}` : r.verdict,
    }));

  const latencies = cmp.rows
    .filter((r) => r.runs > 0)
    .map((r) => ({
      group: groupName(r.point, r.env),
      variant: armLabel(r.build, r.variant, cmp.builds),
      baseline: r.verdict === 'BASELINE' ? '' : cmp.baselineBy === 'build' ? armLabel(r.baseline, r.variant, cmp.builds) : armLabel(r.build, r.baseline, cmp.builds),
      medianUs: r.medianUs,
      p10Us: r.p10Us,
      p90Us: r.p90Us,
      runs: r.runs,
      excluded: r.excludedRuns,
      speedup: r.speedup,
      verdict: r.mode === 'paired' ? `${r.verdict} (paired)` : r.verdict,
      joulesPerForward: r.joulesPerForward,
      meanPowerW: r.meanPowerW,
    }));

  const pointHashes = [...new Set(results.groups.flatMap((g) => [...g.arms.values()].flatMap((a) => a.runs.map((r) => r.pointHash))))];
  const history = await loadHistory(db, {
    pointHashes,
    includeFlagged: opts.includeFlagged ?? false,
    ...(opts.smClockBandMhz === undefined ? {} : { smClockBandMhz: opts.smClockBandMhz }),
  });
  const notes = [cmp.thresholds.text, history.text];
  const historyEnvs = new Set(history.series.map((s) => s.env)).size;
  const historyData = history.series.map((s) => ({
    point: historyEnvs > 1 ? `${s.point} · ${s.env}` : s.point,
    variant: s.variant,
    builds: s.builds.map((b) => buildLabel(b)),
    medians: s.builds.map((b) => b.medianUs),
    p10: s.builds.map((b) => b.p10Us),
    p90: s.builds.map((b) => b.p90Us),
    steps: s.builds.map((b) => b.step),
  }));
  const telemetry = await telemetryRuns(db, results, opts);
  const failures = await failedRuns(db, results, opts.maxFailures ?? 200);
  if (cmp.builds.length > 1) notes.push(`builds: ${cmp.builds.join(', ')}; baseline ${cmp.baselineBy} ${cmp.baseline}`);
  notes.push(
    cmp.includeFlagged
      ? 'flagged runs (throttled, clock-mismatch) included'
      : `flagged runs (throttled, clock-mismatch) excluded: ${cmp.excludedFlagged}`,
  );
  if (singleEnv && results.groups[0]) notes.push(`environment: ${results.groups[0].envLabel}`);
  const paired = cmp.rows.filter((r) => r.mode === 'paired').length;
  if (paired) notes.push(`${paired} comparison(s) use paired rounds of interleaved runs (per-round medians, Wilcoxon signed-rank)`);
  const failed = Object.entries(results.failures);
  if (failed.length) notes.push(`runs without a result: ${failed.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (results.queued) notes.push(`runs still waiting for an outcome: ${results.queued}`);
  for (const r of cmp.rows.filter((x) => x.verdict === 'UNSURE' || x.verdict === 'NO-BASELINE')) {
    notes.push(`${r.verdict} ${groupName(r.point, r.env)} ${armLabel(r.build, r.variant, cmp.builds)}: ${r.reason}`);
  }
  for (const s of history.series) {
    for (const b of s.builds) {
      const note = b.annotation ? ` (annotated ${b.annotation.kind}: ${b.annotation.note})` : '';
      if (b.step) notes.push(`${b.step} at build ${buildLabel(b)} for ${s.variant} ${s.point}: median ${((b.change ?? 0) * 100).toFixed(1)}% (${pEquals(b.p ?? 1)})${note}`);
      else if (b.annotation) notes.push(`build ${buildLabel(b)} for ${s.variant} ${s.point}${note}${b.annotation.kind === 'invalid' ? ': left out of step detection' : ''}`);
    }
  }
  if (telemetry.none) notes.push(`telemetry: no run of this sweep recorded telemetry (CPU backend, or workers started with --no-telemetry)`);

  return {
    comparison: cmp,
    history,
    data: {
      title: `moefarm report: ${results.name}`,
      generatedAt: opts.generatedAt ?? new Date().toISOString(),
      sweep: { id: results.sweepId, name: results.name },
      latencies,
      distributions,
      speedups,
      telemetry: telemetry.runs,
      history: historyData,
      failures: failures.rows,
      failuresTotal: failures.total,
      notes,
    },
  };
}

/** A build on the history axis: source hash, commit, and a '+' for edits not committed (dirty). */
function buildLabel(b: { sourceHash: string; gitCommit: string | null; dirty: boolean }): string {
  return (b.gitCommit ? `${b.sourceHash.slice(0, 8)}@${b.gitCommit.slice(0, 7)}` : b.sourceHash.slice(0, 8)) + (b.dirty ? '+' : '');
}

type TelemetryRun = ReportDataInput['telemetry'][number];

/** The runs that ended without a result, newest last: id, outcome, reason, point, worker. */
async function failedRuns(db: Db, results: SweepResults, max: number): Promise<{ rows: FailureRow[]; total: number }> {
  const where = { sweepId: results.sweepId, status: { notIn: ['done', 'queued'] } };
  const total = await db.run.count({ where });
  const runs = await db.run.findMany({ where, select: { id: true, status: true, reason: true, params: true, workerId: true }, orderBy: [{ finishedAt: 'asc' }, { id: 'asc' }], take: max });
  const rows = runs.map((r) => {
    const params = RunParamsSchema.safeParse(safeJson(r.params));
    const first = params.success ? params.data[0] : undefined;
    let point = '?';
    if (first) {
      const { variant: _v, ...rest } = first.point;
      const variants = params.success ? [...new Set(params.data.map((p) => p.point.variant))].join('+') : '';
      point = `${pointLabel(rest)} ${variants}`;
    }
    return { runId: r.id, status: r.status, reason: r.reason, point, worker: r.workerId };
  });
  return { rows, total };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function telemetryRuns(db: Db, results: SweepResults, opts: ReportOptions): Promise<{ runs: TelemetryRun[]; none: boolean }> {
  const max = opts.maxTelemetry ?? 4;
  const labelOf = new Map<string, string>();
  for (const g of results.groups) {
    for (const arm of g.arms.values()) {
      const variant = armLabel(arm.build, arm.variant, results.builds).replace(/ /g, ':');
      for (const r of arm.runs) {
        const prev = labelOf.get(r.runId);
        labelOf.set(r.runId, prev ? prev.replace(/^([^ ]+)/, `$1+${variant}`) : `${variant} ${g.label} rep ${r.rep}`);
      }
    }
  }
  let rows: Array<{ id: string; groupHash: string; telemetry: string | null }>;
  if (opts.telemetryRuns && opts.telemetryRuns.length > 0) {
    rows = await db.run.findMany({ where: { sweepId: results.sweepId, id: { in: opts.telemetryRuns } }, select: { id: true, groupHash: true, telemetry: true } });
  } else {
    const all = await db.run.findMany({
      where: { sweepId: results.sweepId, status: 'done', telemetry: { not: null } },
      select: { id: true, groupHash: true, telemetry: true },
      orderBy: [{ rep: 'asc' }, { id: 'asc' }],
    });
    // One run per job group first (so each variant/point shows up), then the rest.
    const seen = new Set<string>();
    const first = all.filter((r) => (seen.has(r.groupHash) ? false : (seen.add(r.groupHash), true)));
    rows = [...first, ...all.filter((r) => !first.includes(r))].slice(0, max);
  }
  const runs: TelemetryRun[] = [];
  let any = false;
  for (const r of rows) {
    const label = labelOf.get(r.id) ?? r.id;
    const parsed = r.telemetry === null ? null : TelemetrySchema.safeParse(JSON.parse(r.telemetry));
    const s = parsed?.success ? parsed.data.samples : null;
    if (!s || s.t_ms.length === 0) {
      runs.push({ runId: r.id, label, t_ms: [], sm_mhz: [], power_w: [], temp_c: [] });
      continue;
    }
    any = true;
    const fit = (col: (number | null)[]) => s.t_ms.map((_, i) => col[i] ?? null);
    runs.push({ runId: r.id, label, t_ms: s.t_ms, sm_mhz: fit(s.sm_mhz), power_w: fit(s.power_w), temp_c: fit(s.temp_c) });
  }
  // No readings anywhere: one "no data" line is clearer than a paragraph per run.
  return any ? { runs, none: false } : { runs: [], none: true };
}
