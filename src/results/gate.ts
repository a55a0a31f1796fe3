/**
 * The regression gate (`moefarm check`): a sweep's comparison read as pass or
 * fail, for a CI step. It fails on a *confirmed* regression only: a
 * comparison whose verdict is SLOWER (the statistics' own rule: p < alpha,
 * the CI below 1, beyond the ±2% band; paired rounds or the run-level rule,
 * never one noisy run) and whose slowdown is beyond the threshold. The
 * slowdown is the latency's increase, 1 / speedup - 1 (speedup 0.8 is 25%
 * slower). UNSURE (and NO-BASELINE) is a choice: pass by default, and the
 * gate says so; `--unsure fail` fails on it. Runs that ended without a result
 * (a candidate that does not compile, a crash) fail the gate: nothing was
 * measured of them, and a gate that passes a build that does not build is
 * worse than none. A step annotated expected or invalid (results annotate:
 * the candidate's source hash at that point) no longer fails it.
 */
import type { Db } from '../db/client.js';
import type { CompareRow, Comparison } from './compare.js';
import { annotationKey, loadAnnotations, type StepAnnotation } from './annotations.js';
import type { SweepResults } from './load.js';

export type UnsurePolicy = 'pass' | 'fail';

export interface GateOptions {
  /** Slowdown (latency increase, %) a SLOWER must exceed to fail the gate. */
  thresholdPct: number;
  unsure: UnsurePolicy;
}

export const DEFAULT_THRESHOLD_PCT = 5;

export type GateOutcome = 'fail' | 'pass' | 'unsure' | 'annotated' | 'baseline';

export interface GateRow {
  row: CompareRow;
  /** The measured arm's source hash and point hash (Result.pointHash): the key of an annotation. Null when not one. */
  sourceHash: string | null;
  pointHash: string | null;
  /** Latency increase against the baseline, %: 1 / speedup - 1. Null without a speedup. */
  slowdownPct: number | null;
  annotation: StepAnnotation | null;
  outcome: GateOutcome;
  /** Why, in a few words: "slower by 84.1%, beyond the 5% threshold". */
  why: string;
}

export interface GateResult {
  sweepId: string;
  name: string;
  passed: boolean;
  exitCode: 0 | 1;
  thresholdPct: number;
  unsure: UnsurePolicy;
  rows: GateRow[];
  /** Each reason the gate failed, one line each (empty when it passed). */
  reasons: string[];
  /** Lines a reader should see even when it passed (UNSURE passed, runs still waiting). */
  notes: string[];
  counts: { fail: number; unsure: number; annotated: number; pass: number };
  failures: Record<string, number>;
  queued: number;
}

/** 1 / speedup - 1, as a percentage. */
export function slowdownPct(speedup: number | null): number | null {
  return speedup === null || !(speedup > 0) ? null : (1 / speedup - 1) * 100;
}

const pct = (x: number) => `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}%`;

/** The arm of each comparison row: its source and point hashes when its runs agree on one. */
function armIdentity(results: SweepResults): Map<string, { sourceHash: string | null; pointHash: string | null }> {
  const out = new Map<string, { sourceHash: string | null; pointHash: string | null }>();
  for (const g of results.groups) {
    for (const arm of g.arms.values()) {
      const sources = new Set(arm.runs.map((r) => r.sourceHash));
      const points = new Set(arm.runs.map((r) => r.pointHash));
      out.set(rowKey(g.label, g.envLabel, arm.build, arm.variant), {
        sourceHash: sources.size === 1 ? [...sources][0]! : null,
        pointHash: points.size === 1 ? [...points][0]! : null,
      });
    }
  }
  return out;
}

function rowKey(point: string, env: string, build: string, variant: string): string {
  return [point, env, build, variant].join('\0');
}

/** Annotations that may concern a sweep's comparison: those of its points. */
export function gateAnnotations(db: Db, results: SweepResults): Promise<Map<string, StepAnnotation>> {
  const points = results.groups.flatMap((g) => [...g.arms.values()].flatMap((a) => a.runs.map((r) => r.pointHash)));
  return loadAnnotations(db, points);
}

export function evaluateGate(results: SweepResults, cmp: Comparison, annotations: Map<string, StepAnnotation>, opts: GateOptions): GateResult {
  const ids = armIdentity(results);
  const rows: GateRow[] = cmp.rows.map((row) => {
    const id = ids.get(rowKey(row.point, row.env, row.build, row.variant)) ?? { sourceHash: null, pointHash: null };
    const annotation = id.sourceHash && id.pointHash ? (annotations.get(annotationKey(id.sourceHash, id.pointHash)) ?? null) : null;
    const slow = slowdownPct(row.speedup);
    const base = { row, ...id, slowdownPct: row.verdict === 'BASELINE' ? null : slow, annotation };
    switch (row.verdict) {
      case 'BASELINE':
        return { ...base, outcome: 'baseline', why: 'the baseline' };
      case 'SLOWER':
        if (slow !== null && slow > opts.thresholdPct) {
          if (annotation) return { ...base, outcome: 'annotated', why: `slower by ${pct(slow)}, annotated ${annotation.kind}: ${annotation.note}` };
          return { ...base, outcome: 'fail', why: `slower by ${pct(slow)}, beyond the ${opts.thresholdPct}% threshold` };
        }
        return { ...base, outcome: 'pass', why: `slower by ${slow === null ? '?' : pct(slow)}, within the ${opts.thresholdPct}% threshold` };
      case 'UNSURE':
      case 'NO-BASELINE':
        return { ...base, outcome: 'unsure', why: `${row.verdict}: ${opts.unsure === 'fail' ? 'fails (--unsure fail)' : 'passes (--unsure pass)'}` };
      default:
        return { ...base, outcome: 'pass', why: row.verdict === 'FASTER' ? `faster by ${pct(((row.speedup ?? 1) - 1) * 100)}` : 'no difference beyond ±' + pct(cmp.thresholds.band * 100) };
    }
  });
  const counts = {
    fail: rows.filter((r) => r.outcome === 'fail').length,
    unsure: rows.filter((r) => r.outcome === 'unsure').length,
    annotated: rows.filter((r) => r.outcome === 'annotated').length,
    pass: rows.filter((r) => r.outcome === 'pass').length,
  };
  const reasons: string[] = [];
  const notes: string[] = [];
  if (counts.fail) reasons.push(`${counts.fail} comparison(s) SLOWER by more than ${opts.thresholdPct}%`);
  const unsureText = `${counts.unsure} comparison(s) UNSURE or without a baseline`;
  if (counts.unsure && opts.unsure === 'fail') reasons.push(`${unsureText} (--unsure fail)`);
  if (counts.unsure && opts.unsure === 'pass') notes.push(`${unsureText} pass: UNSURE passes by default (--unsure pass); --unsure fail to fail on them, or repeat with sweep submit --until-confident`);
  const failed = Object.entries(results.failures);
  if (failed.length) reasons.push(`${failed.reduce((n, [, v]) => n + v, 0)} run(s) ended without a result (${failed.map(([k, v]) => `${k} ${v}`).join(', ')}): nothing was measured of them`);
  if (results.queued) {
    const text = `${results.queued} run(s) still waiting for an outcome: the verdicts are not final`;
    if (opts.unsure === 'fail') reasons.push(`${text} (--unsure fail)`);
    else notes.push(`${text}; wait for them (sweep status ID --watch) before trusting a pass`);
  }
  if (counts.annotated) notes.push(`${counts.annotated} SLOWER comparison(s) annotated expected or invalid (results annotate): not counted`);
  if (rows.every((r) => r.outcome === 'baseline') && !failed.length) notes.push('nothing was compared: every row is a baseline (does the sweep have two builds or variants?)');
  const passed = reasons.length === 0;
  return {
    sweepId: cmp.sweepId,
    name: cmp.name,
    passed,
    exitCode: passed ? 0 : 1,
    thresholdPct: opts.thresholdPct,
    unsure: opts.unsure,
    rows,
    reasons,
    notes,
    counts,
    failures: results.failures,
    queued: results.queued,
  };
}
