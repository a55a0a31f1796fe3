/**
 * The farm as autotuner: from a sweep that tried a variant at several
 * tunable settings (matrix.tune), the setting to use by default, per GPU
 * model (the device name the binary reported), shape, tokens, dtype and
 * variant, written as a tuning table the binary embeds (csrc/tuning/*.json,
 * csrc/src/tunables.cpp).
 *
 * Exhaustive: every listed setting is measured (the sweep is the cartesian
 * product); successive halving across the fleet is not done. The fastest
 * setting by pooled median is the winner only if it beats the runner-up (the
 * second fastest) with a FASTER verdict of the farm's own statistics
 * (compare.ts verdictOf: paired over rounds when the settings ran
 * interleaved, else Mann-Whitney and run-level tests over repetitions, with
 * a bootstrap CI and the ±2% equivalence band). Anything else is a tie: it is
 * reported, and the tuning table keeps what it had for that key (the binary
 * then keeps its default).
 */
import { UsageError } from '../errors.js';
import { TUNING_TABLE_SCHEMA, tuningKey, tuningKeyOf, type TuningEntry, type TuningKey, type TuningTable } from '../schema/variant-table.js';
import { median } from '../stats/index.js';
import { parseTuneText } from '../sweep/tune.js';
import { thresholds, verdictOf, type RowVerdict, type VerdictOptions } from './compare.js';
import type { Arm, SweepResults, VariantRun } from './load.js';

export interface TuneSettingResult {
  /** The setting, as tuneText writes it (`slice=32`). */
  tune: string;
  runs: number;
  samples: number;
  medianUs: number;
  /** Median over runs of the energy per forward (J); null where not measured. */
  joulesPerForward: number | null;
}

/** A decision is filed under the tuning table's key: the binary's device name, variant, shape, tokens, dtype, and GPUs, shared experts and fp8 scales where not at their defaults. */
export interface TuneDecision extends TuningKey {
  build: string;
  /** The point and environment the runs were grouped by (compare's labels). */
  point: string;
  env: string;
  /** Every setting measured, fastest first. */
  settings: TuneSettingResult[];
  /**
   * 'winner': the fastest setting beat the runner-up (FASTER); 'tie': it did not (SAME or UNSURE);
   * 'single': one setting only, nothing to choose; 'conflict': another group of the same key chose otherwise.
   */
  outcome: 'winner' | 'tie' | 'single' | 'conflict';
  /** The fastest setting, and the runner-up it was tested against. */
  best: string;
  runnerUp: string | null;
  /** Runner-up median / best median, with its CI, test mode, p and verdict (null for 'single'). */
  speedup: number | null;
  ciLo: number | null;
  ciHi: number | null;
  mode: 'paired' | 'unpaired' | null;
  p: number | null;
  verdict: RowVerdict | null;
  reason: string;
}

export interface TuneReport {
  sweepId: string;
  name: string;
  thresholds: string;
  includeFlagged: boolean;
  decisions: TuneDecision[];
  /** Variants that ran without a tunable setting (not tuned; listed so nothing is silently ignored). */
  untuned: string[];
  failures: Record<string, number>;
  queued: number;
}

export interface TuneOptions extends VerdictOptions {
  includeFlagged?: boolean;
}

/** The binary's device name of these runs: the one most of them reported. */
function deviceOf(runs: VariantRun[], fallback: string): string {
  const counts = new Map<string, number>();
  for (const r of runs) if (r.device) counts.set(r.device, (counts.get(r.device) ?? 0) + 1);
  const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
  return best ? best[0] : fallback;
}

/** Decides, per tuning key, which tunable setting the binary should use by default. */
export function decideTuning(results: SweepResults, opts: TuneOptions = {}): TuneReport {
  const th = thresholds(opts);
  const includeFlagged = opts.includeFlagged ?? false;
  const decisions: TuneDecision[] = [];
  const untuned = new Set<string>();
  for (const g of results.groups) {
    // Arms of one build and variant, one per setting.
    const byVariant = new Map<string, Arm[]>();
    for (const arm of g.arms.values()) {
      if (!arm.tune) {
        untuned.add(arm.baseVariant);
        continue;
      }
      const k = `${arm.build}\0${arm.baseVariant}`;
      byVariant.set(k, [...(byVariant.get(k) ?? []), arm]);
    }
    for (const arms of byVariant.values()) {
      const keep = (a: Arm) => (includeFlagged ? a.runs : a.runs.filter((r) => r.flags.length === 0));
      const measured = arms
        .map((a) => ({ arm: a, runs: keep(a) }))
        .filter((x) => x.runs.length > 0)
        .map((x) => {
          const samples = x.runs.flatMap((r) => r.samples);
          const energy = x.runs.map((r) => r.joulesPerForward).filter((j): j is number => typeof j === 'number');
          return { ...x, result: { tune: x.arm.tune, runs: x.runs.length, samples: samples.length, medianUs: median(samples), joulesPerForward: energy.length ? median(energy) : null } };
        })
        .sort((a, b) => a.result.medianUs - b.result.medianUs);
      if (measured.length === 0) continue;
      const first = arms[0]!;
      const best = measured[0]!;
      const second = measured[1];
      const base = {
        // the point's key fields (shape, tokens, dtype, and GPUs, shared experts, fp8 scales where set)
        ...tuningKeyOf({ ...g.point, device: deviceOf(measured.flatMap((m) => m.runs), g.env.gpu), variant: first.baseVariant }),
        build: first.build,
        point: g.label,
        env: g.envLabel,
        settings: measured.map((m) => m.result),
        best: best.arm.tune,
      };
      if (!second) {
        decisions.push({ ...base, outcome: 'single', runnerUp: null, speedup: null, ciLo: null, ciHi: null, mode: null, p: null, verdict: null, reason: 'one setting measured: nothing to choose between' });
        continue;
      }
      // Speedup of the best against the runner-up (runner-up median / best median): FASTER means it truly is.
      const v = verdictOf(second.runs, best.runs, th);
      decisions.push({
        ...base,
        outcome: v.verdict === 'FASTER' ? 'winner' : 'tie',
        runnerUp: second.arm.tune,
        speedup: v.speedup,
        ciLo: v.ciLo,
        ciHi: v.ciHi,
        mode: v.mode,
        p: v.p,
        verdict: v.verdict,
        reason: v.verdict === 'FASTER' ? v.reason : `${second.arm.tune} is not slower than ${best.arm.tune} beyond doubt (${v.verdict}): ${v.reason}`,
      });
    }
  }
  // One key, one value: groups of one key (other clocks, iteration counts, observed clock bands) that chose differently.
  const byKey = new Map<string, TuneDecision[]>();
  for (const d of decisions) byKey.set(tuningKey(d), [...(byKey.get(tuningKey(d)) ?? []), d]);
  for (const list of byKey.values()) {
    const winners = new Set(list.filter((d) => d.outcome === 'winner').map((d) => d.best));
    if (winners.size > 1) {
      for (const d of list) if (d.outcome === 'winner') {
        d.outcome = 'conflict';
        d.reason = `groups of the same key chose differently (${[...winners].join(' / ')}; builds ${[...new Set(list.map((x) => x.build))].join(', ')}): nothing written; tune one build and one condition per sweep`;
      }
    }
  }
  decisions.sort((a, b) => tuningKey(a).localeCompare(tuningKey(b), 'en', { numeric: true }) || a.env.localeCompare(b.env));
  return { sweepId: results.sweepId, name: results.name, thresholds: th.text, includeFlagged, decisions, untuned: [...untuned].sort(), failures: results.failures, queued: results.queued };
}

export interface TableUpdate {
  table: TuningTable;
  /** Entries added or replaced (key text), and keys left as they were because of a tie. */
  written: string[];
  kept: string[];
}

const ABOUT =
  'Tunable values moe-bench uses by default, per device (its name as the binary reports it), variant, shape, tokens and dtype (and GPUs, shared experts and fp8 scales where not at their defaults); written by `moefarm tune` from a sweep over the settings (each entry says how it was measured). --tune overrides an entry, --no-tuning-table ignores them all.';

/**
 * The tuning table with the winners written in: an entry of the same key is replaced, other entries
 * stay; a tie or a single setting changes nothing (the binary keeps what it had: the entry, or its default).
 */
export function updateTuningTable(existing: TuningTable | null, report: TuneReport, when: Date = new Date()): TableUpdate {
  const entries: TuningEntry[] = existing ? existing.entries.map((e) => ({ ...e })) : [];
  const written: string[] = [];
  const kept: string[] = [];
  const done = new Set<string>();
  for (const d of report.decisions) {
    const key = tuningKey(d);
    if (d.outcome !== 'winner') {
      if (!done.has(key)) kept.push(describeKey(d));
      continue;
    }
    if (done.has(key)) continue;
    done.add(key);
    const entry: TuningEntry = {
      ...tuningKeyOf(d),
      tunables: parseTuneText(d.best),
      measured: measuredText(report, d, when),
    };
    const at = entries.findIndex((e) => tuningKey(e) === key);
    if (at >= 0) entries[at] = entry;
    else entries.push(entry);
    written.push(describeKey(d));
  }
  // A key written now is not also "kept" because another group of it tied.
  const writtenSet = new Set(written);
  return { table: { schema: TUNING_TABLE_SCHEMA, about: existing?.about ?? ABOUT, entries }, written, kept: [...new Set(kept)].filter((k) => !writtenSet.has(k)) };
}

export function describeKey(d: TuningKey): string {
  const extra = [
    d.shared_experts ? `+${d.shared_experts}x${d.shared_inter} shared` : '',
    d.gpus && d.gpus > 1 ? `${d.gpus} GPUs` : '',
  ].filter(Boolean);
  const dtype = d.fp8_scales ? `${d.dtype}/${d.fp8_scales}` : d.dtype;
  return `${d.device} ${d.variant} h${d.hidden}/i${d.inter}/e${d.experts}/k${d.topk}${extra.length ? ' ' + extra.join(' ') : ''} T=${d.tokens} ${dtype}`;
}

function measuredText(report: TuneReport, d: TuneDecision, when: Date): string {
  const us = (x: number) => `${x.toPrecision(4)} us`;
  const all = d.settings.map((s) => `${s.tune} ${us(s.medianUs)} (${s.runs} run${s.runs === 1 ? '' : 's'})`).join(', ');
  const ci = d.ciLo !== null && d.ciHi !== null ? ` [${d.ciLo.toFixed(3)}, ${d.ciHi.toFixed(3)}]` : '';
  return (
    `moefarm tune ${when.toISOString().slice(0, 10)}, sweep ${report.sweepId} (${report.name}), ${d.env}: ` +
    `${d.best} beat ${d.runnerUp} by ${d.speedup?.toFixed(3)}x${ci} (${d.verdict}, ${d.mode}); medians: ${all}`
  );
}

/** The table as the repository keeps it: one entry per line, so a change is a one-line diff. */
export function formatTuningTable(t: TuningTable): string {
  const lines = t.entries.map((e) => '    ' + JSON.stringify(e));
  return `{\n  "schema": ${JSON.stringify(t.schema)},\n  "about": ${JSON.stringify(t.about ?? ABOUT)},\n  "entries": [\n${lines.join(',\n')}${lines.length ? '\n' : ''}  ]\n}\n`;
}

/** Refuses a sweep that has no tunable settings to choose between. */
export function assertTuned(report: TuneReport): void {
  if (report.decisions.length === 0) {
    const why = report.queued > 0 ? `; ${report.queued} run(s) still wait for an outcome` : '';
    throw new UsageError(
      `sweep ${report.sweepId} (${report.name}): no result measured at a tunable setting (matrix.tune)${why}` +
        (report.untuned.length ? `; variants without settings: ${report.untuned.join(', ')}` : ''),
    );
  }
}
