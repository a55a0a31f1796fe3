/**
 * The confirmed regressions of a finished sweep: what `moefarm serve
 * --notify` reports. Two kinds, neither from one noisy run:
 *
 * - `ab`: a comparison inside the sweep between builds (baseline by build,
 *   as an A/B sweep has) that `moefarm check` would fail with its default
 *   threshold: SLOWER by the statistics' rule (paired rounds, or the
 *   run-level test with 2+ runs a side) and more than 5% slower.
 * - `history`: a REGRESSION step in a point's history (results history)
 *   into a build this sweep measured, confirmed by the run-level rule: the
 *   step's build and the build before it each have 2 or more runs, and the
 *   unpaired verdict of compare.ts on their runs (Mann-Whitney on samples AND
 *   the test on run medians, CI from the run bootstrap) is SLOWER. History's
 *   step test is the same run-level p (stats/unpaired.ts); the verdict adds
 *   the CI and the ±2% band.
 *
 * A step or comparison annotated expected or invalid (results annotate) is
 * not reported. Runs of a sweep repeated by `--until-confident` count once
 * the sweep is finished again, so an UNSURE that is later decided SLOWER is
 * reported then, and an UNSURE never is.
 */
import type { Db } from '../db/client.js';
import { compareSweep, DEFAULT_MIN_RUNS, thresholds, verdictOf } from '../results/compare.js';
import { DEFAULT_THRESHOLD_PCT, evaluateGate, gateAnnotations, slowdownPct } from '../results/gate.js';
import { loadHistory } from '../results/history.js';
import { loadSweepResults, sampledRun, type VariantRun } from '../results/load.js';

export interface RegressionBuild {
  sourceHash: string;
  gitCommit: string | null;
  /** The sweep's name for it (ab), or where the source came from first (history). */
  name: string | null;
}

export interface Regression {
  kind: 'ab' | 'history';
  /** Stable identity: the same regression seen again is not reported twice. */
  key: string;
  point: string;
  pointHash: string | null;
  env: string;
  variant: string;
  /** The slower build, and what it is slower than. */
  build: RegressionBuild;
  against: RegressionBuild;
  speedup: number | null;
  ciLo: number | null;
  ciHi: number | null;
  p: number | null;
  /** Latency increase, %. */
  slowerPct: number | null;
  reason: string;
}

export interface SweepRegressions {
  sweep: { id: string; name: string; label: string | null };
  regressions: Regression[];
}

export async function findRegressions(db: Db, sweepId: string): Promise<SweepRegressions> {
  const sweep = await db.sweep.findUnique({ where: { id: sweepId }, select: { id: true, name: true, label: true } });
  if (!sweep) return { sweep: { id: sweepId, name: '?', label: null }, regressions: [] };
  const results = await loadSweepResults(db, sweepId);
  const out: Regression[] = [];
  const cmp = compareSweep(results, null);
  if (cmp.baselineBy === 'build' && cmp.builds.length > 1) {
    const gate = evaluateGate(results, cmp, await gateAnnotations(db, results), { thresholdPct: DEFAULT_THRESHOLD_PCT, unsure: 'pass' });
    const armSource = new Map<string, string | null>();
    for (const g of gate.rows) armSource.set(`${g.row.point}\0${g.row.env}\0${g.row.build}\0${g.row.variant}`, g.sourceHash);
    for (const g of gate.rows.filter((x) => x.outcome === 'fail')) {
      const r = g.row;
      const baseSource = armSource.get(`${r.point}\0${r.env}\0${r.baseline}\0${r.variant}`) ?? null;
      out.push({
        kind: 'ab',
        key: `ab|${sweepId}|${r.point}|${r.env}|${r.build}|${r.variant}`,
        point: r.point,
        pointHash: g.pointHash,
        env: r.env,
        variant: r.variant,
        build: { sourceHash: g.sourceHash ?? '', gitCommit: null, name: r.build },
        against: { sourceHash: baseSource ?? '', gitCommit: null, name: r.baseline },
        speedup: r.speedup,
        ciLo: r.ciLo,
        ciHi: r.ciHi,
        p: r.p,
        slowerPct: slowdownPct(r.speedup),
        reason: r.reason,
      });
    }
  }
  // History: steps into a build this sweep measured.
  const measured = new Set(results.groups.flatMap((g) => [...g.arms.values()].flatMap((a) => a.runs.map((r) => r.sourceHash))));
  const pointHashes = [...new Set(results.groups.flatMap((g) => [...g.arms.values()].flatMap((a) => a.runs.map((r) => r.pointHash))))];
  if (pointHashes.length) {
    const history = await loadHistory(db, { pointHashes, keepRuns: true });
    const th = thresholds();
    for (const s of history.series) {
      const counted = s.builds.filter((b) => b.annotation?.kind !== 'invalid');
      counted.forEach((b, i) => {
        if (b.step !== 'REGRESSION' || b.annotation || !measured.has(b.sourceHash) || i === 0) return;
        const before = counted[i - 1]!;
        const runs = (x: typeof b) => (x.runSamples ?? []).map((r): VariantRun => asRun(r.runId, r.samples, x.sourceHash));
        const base = runs(before);
        const cand = runs(b);
        if (Math.min(base.length, cand.length) < DEFAULT_MIN_RUNS) return;
        const v = verdictOf(base, cand, th);
        if (v.verdict !== 'SLOWER') return;
        out.push({
          kind: 'history',
          key: `history|${b.sourceHash}|${s.pointHash}|${s.env}`,
          point: s.point,
          pointHash: s.pointHash,
          env: s.env,
          variant: s.variant,
          build: { sourceHash: b.sourceHash, gitCommit: b.gitCommit, name: b.label },
          against: { sourceHash: before.sourceHash, gitCommit: before.gitCommit, name: before.label },
          speedup: v.speedup,
          ciLo: v.ciLo,
          ciHi: v.ciHi,
          p: v.p,
          slowerPct: slowdownPct(v.speedup),
          reason: `history step (median ${((b.change ?? 0) * 100).toFixed(1)}%) confirmed over ${base.length}+${cand.length} runs: ${v.reason}`,
        });
      });
    }
  }
  return { sweep, regressions: out };
}

/** A run of one build, as compare.ts reads runs: unpaired (builds of a history come from separate runs). */
function asRun(runId: string, samples: number[], sourceHash: string): VariantRun {
  return sampledRun({ runId: `${sourceHash}/${runId}`, build: sourceHash, samples, sourceHash });
}

/** One line for people (and for chat webhooks that show a `text` field). */
export function regressionText(sweep: SweepRegressions['sweep'], r: Regression): string {
  const what = r.kind === 'ab' ? `build ${r.build.name} vs ${r.against.name}` : `build ${r.build.sourceHash.slice(0, 12)}${r.build.gitCommit ? ` (commit ${r.build.gitCommit.slice(0, 10)})` : ''} vs the build before it`;
  const by = r.slowerPct === null ? '' : ` ${r.slowerPct.toFixed(1)}% slower`;
  const ci = r.ciLo === null || r.ciHi === null ? '' : ` (speedup ${r.speedup?.toFixed(3)}, 95% CI [${r.ciLo.toFixed(3)}, ${r.ciHi.toFixed(3)}])`;
  return `moefarm: regression in sweep ${sweep.id} (${sweep.name}): ${r.point} ${r.variant}: ${what}${by}${ci}`;
}
