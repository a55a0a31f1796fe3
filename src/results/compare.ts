/**
 * The comparison of a sweep: per point and environment group (GPU, clock and
 * power settings, observed clock band), the median and spread of each
 * variant, the speedup against the baseline with a bootstrap 95% CI, a test
 * on the raw samples, and a verdict FASTER / SLOWER / SAME / UNSURE.
 *
 * Two designs, chosen by how the runs were made:
 * - paired: the variants ran interleaved in rounds inside one job (sweep
 *   `interleave: true`). Each round is reduced to its median per variant and
 *   the per-round ratios are compared (stats comparePaired: Wilcoxon
 *   signed-rank on log ratios, paired bootstrap CI). Drift that hits a round
 *   hits both variants and cancels. Rounds of all repetitions are pooled.
 * - unpaired: each variant ran in its own jobs. Mann-Whitney U on all raw
 *   samples of all repetitions AND Welch's t on log per-run medians must
 *   both reject (verdictOf says why the second one is needed); the CI is
 *   the wider of the sample bootstrap and the run (cluster) bootstrap.
 *
 * What is compared is an arm: a build and a variant at one point. The
 * baseline is a variant (each build's variants against that variant of the
 * same build) or a build (each build against that build, variant by
 * variant). Builds interleaved in one job pair by round exactly as variants do.
 *
 * Speedup = baseline median / variant median: above 1 means faster.
 * Flagged runs (throttled, clock-mismatch) are left out unless asked for,
 * and counted.
 */
import { UsageError } from '../errors.js';
import {
  BOOTSTRAP_DEFAULTS,
  clusterBootstrapRatio,
  comparePaired,
  compareSamples,
  decide,
  DEFAULT_ALPHA,
  DEFAULT_EQUIVALENCE_BAND,
  DEFAULT_MIN_ROUNDS,
  DEFAULT_MIN_SAMPLES,
  median,
  pEquals,
  quantileSorted,
  shapeNote,
  unpairedRunTest,
} from '../stats/index.js';
import { DEFAULT_BUILD } from '../schema/sweep.js';
import { armKey, type Arm, type Baseline, type PointGroup, type SweepResults, type VariantRun } from './load.js';

export type RowVerdict = 'FASTER' | 'SLOWER' | 'SAME' | 'UNSURE' | 'BASELINE' | 'NO-BASELINE';

/** Fewest runs per variant for an unpaired verdict: one run says nothing about run-to-run variation. */
export const DEFAULT_MIN_RUNS = 2;
export const CONFIDENCE = BOOTSTRAP_DEFAULTS.confidence;

export interface VerdictOptions {
  /** Significance level. Default 0.01 (stats DEFAULT_ALPHA). */
  alpha?: number;
  /** Equivalence band on the speedup. Default 0.02 (±2%). */
  band?: number;
  /** Runs per variant needed for an unpaired verdict. Default 2. */
  minRuns?: number;
  /** Bootstrap resamples. Default 2000. */
  resamples?: number;
}

export interface CompareOptions extends VerdictOptions {
  /** Include runs flagged throttled / clock-mismatch (default: leave them out). */
  includeFlagged?: boolean;
}

export interface Thresholds {
  alpha: number;
  band: number;
  confidence: number;
  resamples: number;
  minRuns: number;
  minSamples: number;
  minRounds: number;
  text: string;
}

export interface CompareRow {
  point: string;
  /** The build (the sweep's name for it) this row measured. */
  build: string;
  /** The environment group, as one label (gpu · clock · power · SM clock band). */
  env: string;
  gpu: string;
  clock: string;
  power: string;
  /** The band of the SM clock its runs ran at (RunEnvironment.smClockBand). */
  smClockBand: string;
  variant: string;
  /** The baseline's name in its dimension (Comparison.baselineBy): a variant of this build, or a build with this variant. */
  baseline: string;
  runs: number;
  samples: number;
  /** Runs of this variant in this group left out because they were flagged. */
  excludedRuns: number;
  medianUs: number;
  p10Us: number;
  p90Us: number;
  /** Interquartile range / median: the relative spread. */
  iqrRel: number;
  speedup: number | null;
  ciLo: number | null;
  ciHi: number | null;
  /** 'paired' (interleaved rounds), 'unpaired', or null (baseline row / no baseline). */
  mode: 'paired' | 'unpaired' | null;
  /** p of the verdict: Wilcoxon (paired), max(Mann-Whitney, Welch on run medians) (unpaired). */
  p: number | null;
  pMannWhitney: number | null;
  pRunLevel: number | null;
  pKs: number | null;
  /** Paired: rounds compared. */
  rounds: number | null;
  verdict: RowVerdict;
  reason: string;
  /** Run groups (Run.groupHash) of this variant and of the baseline in this environment: what to repeat. */
  groupHashes: string[];
  /** The variant's name and its tunable setting ('' when none): `variant` is the two together (`fused group=8`). */
  baseVariant: string;
  tune: string;
  /** Median over runs of the energy per forward (J) and mean power (W); null where none was measured (cpu). */
  joulesPerForward: number | null;
  meanPowerW: number | null;
  /** Runs of this row that measured energy. */
  energyRuns: number;
}

export interface Comparison {
  sweepId: string;
  name: string;
  baseline: string;
  /** 'variant': each build's variants against one of its variants; 'build': each build against one build, variant by variant. */
  baselineBy: 'variant' | 'build';
  /** The sweep's builds, in order. */
  builds: string[];
  thresholds: Thresholds;
  includeFlagged: boolean;
  /** Runs left out because they were flagged, over the whole sweep. */
  excludedFlagged: number;
  rows: CompareRow[];
  failures: Record<string, number>;
  queued: number;
  /** Across sweeps (results compare --against / --against-label): each "build" is a sweep or a label. */
  armsAre?: 'sweep' | 'label';
}

export function parseBaseline(spec: string | undefined): Baseline | null {
  if (spec === undefined) return null;
  // A tuned variant is named with its setting: variant='persistent-splitk slice=32'.
  const m = /^(variant|build)=([A-Za-z0-9][A-Za-z0-9._-]*(?: [a-z][a-z0-9_]*=-?\d+)*)$/.exec(spec);
  if (!m || (m[1] === 'build' && m[2]!.includes(' '))) throw new UsageError(`--baseline: expected variant=NAME (a tuned one as 'variant=NAME TUNABLE=VALUE') or build=NAME, got "${spec}"`);
  return { by: m[1] as Baseline['by'], name: m[2]! };
}

export function thresholds(opts: VerdictOptions = {}): Thresholds {
  const alpha = opts.alpha ?? DEFAULT_ALPHA;
  const band = opts.band ?? DEFAULT_EQUIVALENCE_BAND;
  const minRuns = opts.minRuns ?? DEFAULT_MIN_RUNS;
  const resamples = opts.resamples ?? BOOTSTRAP_DEFAULTS.resamples;
  const pct = (x: number) => `${+(x * 100).toFixed(2)}%`;
  const text =
    `verdict: FASTER/SLOWER when p < ${alpha}, the ${pct(CONFIDENCE)} bootstrap CI of the speedup excludes 1 and the speedup is beyond ±${pct(band)}; ` +
    `SAME when the CI lies inside ±${pct(band)}; otherwise UNSURE. ` +
    `Unpaired: p = max(Mann-Whitney U on all raw samples, run-level p), run-level p = 2 x min(Welch t on log per-run medians, Mann-Whitney U on per-run medians), CI = wider of sample and run bootstrap, needs >= ${minRuns} runs and >= ${DEFAULT_MIN_SAMPLES} samples per variant. ` +
    `Paired (interleaved): Wilcoxon signed-rank on per-round median ratios, paired bootstrap CI, needs >= ${DEFAULT_MIN_ROUNDS} rounds. ` +
    `${resamples} resamples, seed ${BOOTSTRAP_DEFAULTS.seed}.`;
  return { alpha, band, confidence: CONFIDENCE, resamples, minRuns, minSamples: DEFAULT_MIN_SAMPLES, minRounds: DEFAULT_MIN_ROUNDS, text };
}

export function compareSweep(results: SweepResults, baselineOpt: Baseline | null, opts: CompareOptions = {}): Comparison {
  const arms = results.groups.flatMap((g) => [...g.arms.values()]);
  const allVariants = [...new Set(arms.map((a) => a.variant))];
  const allBuilds = results.builds.filter((b) => arms.some((a) => a.build === b));
  if (baselineOpt?.by === 'variant' && !allVariants.includes(baselineOpt.name)) {
    throw new UsageError(`--baseline: variant '${baselineOpt.name}' has no results in sweep ${results.sweepId} (has: ${allVariants.join(', ') || 'none'})`);
  }
  if (baselineOpt?.by === 'build' && !allBuilds.includes(baselineOpt.name)) {
    throw new UsageError(`--baseline: build '${baselineOpt.name}' has no results in sweep ${results.sweepId} (has: ${allBuilds.join(', ') || 'none'})`);
  }
  // Default: the sweep's own baseline; else, with several builds, the first build; else the first variant.
  let baseline: Baseline =
    baselineOpt ??
    results.baselineFromSpec ??
    (allBuilds.length > 1 ? { by: 'build', name: allBuilds[0]! } : { by: 'variant', name: allVariants[0] ?? '' });
  // The sweep file names a variant that ran only at tunable settings (matrix.tune): its first setting is the baseline.
  if (!baselineOpt && baseline.by === 'variant' && !allVariants.includes(baseline.name)) {
    const tuned = arms.filter((a) => a.baseVariant === baseline.name).map((a) => a.variant).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    if (tuned.length > 0) baseline = { by: 'variant', name: tuned[0]! };
  }
  const th = thresholds(opts);
  const includeFlagged = opts.includeFlagged ?? false;
  const rows: CompareRow[] = [];
  const excludedRunIds = new Set<string>();
  const buildRank = (b: string) => (baseline.by === 'build' && b === baseline.name ? -1 : allBuilds.indexOf(b));
  const sortedGroups = [...results.groups].sort((a, b) => a.label.localeCompare(b.label, 'en', { numeric: true }) || a.envLabel.localeCompare(b.envLabel));
  for (const g of sortedGroups) {
    const clean = new Map<string, VariantRun[]>();
    for (const [k, arm] of g.arms) {
      const kept = includeFlagged ? arm.runs : arm.runs.filter((r) => r.flags.length === 0);
      for (const r of arm.runs) if (!kept.includes(r)) excludedRunIds.add(r.runId);
      clean.set(k, kept);
    }
    const baseOf = (a: Arm) => (baseline.by === 'build' ? armKey(baseline.name, a.variant) : armKey(a.build, baseline.name));
    const isBase = (a: Arm) => baseOf(a) === armKey(a.build, a.variant);
    const ordered = [...g.arms.values()].sort((a, b) =>
      baseline.by === 'build'
        ? a.variant.localeCompare(b.variant) || buildRank(a.build) - buildRank(b.build)
        : buildRank(a.build) - buildRank(b.build) || (isBase(a) ? -1 : isBase(b) ? 1 : a.variant.localeCompare(b.variant)),
    );
    for (const arm of ordered) {
      const runs = clean.get(armKey(arm.build, arm.variant))!;
      const base = clean.get(baseOf(arm)) ?? [];
      rows.push(compareRow(g, arm, baseline, isBase(arm), base, runs, arm.runs.length - runs.length, th));
    }
  }
  return {
    sweepId: results.sweepId,
    name: results.name,
    baseline: baseline.name,
    baselineBy: baseline.by,
    builds: allBuilds,
    thresholds: th,
    includeFlagged,
    excludedFlagged: excludedRunIds.size,
    rows,
    failures: results.failures,
    queued: results.queued,
  };
}

function compareRow(g: PointGroup, arm: Arm, baselineSpec: Baseline, isBaseline: boolean, base: VariantRun[], runs: VariantRun[], excludedRuns: number, th: Thresholds): CompareRow {
  const variant = arm.variant;
  const baseline = baselineSpec.name;
  const what = arm.build === DEFAULT_BUILD ? variant : `${arm.build} ${variant}`;
  const baseWhat = baselineSpec.by === 'build' ? `build ${baseline} (${variant})` : arm.build === DEFAULT_BUILD ? baseline : `${arm.build} ${baseline}`;
  const s = pooled(runs).sort((a, b) => a - b);
  const med = quantileSorted(s, 0.5);
  const row: CompareRow = {
    point: g.label,
    build: arm.build,
    env: g.envLabel,
    gpu: g.env.gpu,
    clock: g.env.clock,
    power: g.env.power,
    smClockBand: g.env.smClockBand,
    variant,
    baseline,
    runs: runs.length,
    samples: s.length,
    excludedRuns,
    medianUs: med,
    p10Us: quantileSorted(s, 0.1),
    p90Us: quantileSorted(s, 0.9),
    iqrRel: (quantileSorted(s, 0.75) - quantileSorted(s, 0.25)) / med,
    speedup: null,
    ciLo: null,
    ciHi: null,
    mode: null,
    p: null,
    pMannWhitney: null,
    pRunLevel: null,
    pKs: null,
    rounds: null,
    verdict: 'UNSURE',
    reason: '',
    groupHashes: [...new Set([...runs, ...base].map((r) => r.groupHash))].sort(),
    baseVariant: arm.baseVariant ?? variant,
    tune: arm.tune ?? '',
    ...energyOf(runs),
  };
  if (runs.length === 0) {
    return { ...row, verdict: 'UNSURE', reason: `every run of ${what} here is flagged (${excludedRuns}); --include-flagged to use them` };
  }
  if (isBaseline) {
    return { ...row, speedup: 1, verdict: 'BASELINE', reason: 'the baseline' };
  }
  if (base.length === 0) {
    return { ...row, verdict: 'NO-BASELINE', reason: `no unflagged run of the baseline ${baseWhat} in this environment group` };
  }
  return { ...row, ...verdictOf(base, runs, th) };
}

/** The median over runs of what the GPU's energy counter gave; null when no run measured it (cpu). */
function energyOf(runs: VariantRun[]): Pick<CompareRow, 'joulesPerForward' | 'meanPowerW' | 'energyRuns'> {
  const j = runs.map((r) => r.joulesPerForward).filter((x): x is number => typeof x === 'number');
  const w = runs.map((r) => r.meanPowerW).filter((x): x is number => typeof x === 'number');
  return { joulesPerForward: j.length ? median(j) : null, meanPowerW: w.length ? median(w) : null, energyRuns: j.length };
}

function pooled(runs: VariantRun[]): number[] {
  return runs.flatMap((r) => r.samples);
}

type VerdictPart = Pick<CompareRow, 'speedup' | 'ciLo' | 'ciHi' | 'mode' | 'p' | 'pMannWhitney' | 'pRunLevel' | 'pKs' | 'rounds' | 'verdict' | 'reason'>;

/** Per-round samples of the runs both variants share (interleaved jobs), as aligned lists of rounds. */
export function pairedRounds(base: VariantRun[], cand: VariantRun[]): { base: number[][]; cand: number[][]; runs: number } {
  const candById = new Map(cand.filter((r) => r.interleaved).map((r) => [r.runId, r]));
  const out = { base: [] as number[][], cand: [] as number[][], runs: 0 };
  for (const b of base) {
    const c = candById.get(b.runId);
    if (!b.interleaved || !c) continue;
    const byRound = (r: VariantRun) => {
      const m = new Map<number, number[]>();
      if (r.rounds.length !== r.samples.length) return m;
      r.samples.forEach((x, i) => {
        const k = r.rounds[i]!;
        const list = m.get(k) ?? [];
        list.push(x);
        m.set(k, list);
      });
      return m;
    };
    const rb = byRound(b);
    const rc = byRound(c);
    const shared = [...rb.keys()].filter((k) => rc.has(k)).sort((x, y) => x - y);
    if (shared.length === 0) continue;
    out.runs++;
    for (const k of shared) {
      out.base.push(rb.get(k)!);
      out.cand.push(rc.get(k)!);
    }
  }
  return out;
}

/**
 * The verdict of one arm against its baseline. Paired when they share
 * interleaved rounds; otherwise unpaired, and then asked at two levels. The
 * samples of one run share its process, its build of the caches, its clock and
 * its neighbours on the machine, so they are not independent of each other:
 * two runs of the same binary often differ by more than their within-run
 * spread (on a shared 2-core box, by 5-10%). A test on pooled samples then
 * calls identical variants "different" far more often than its alpha says. So
 * the unpaired verdict also asks the question at the level where repetitions
 * are independent, the run: Welch's t on log run medians and Mann-Whitney on
 * the run medians (stats/unpaired.ts, shared with history), and a cluster bootstrap CI that resamples
 * runs (stats/bootstrap.ts clusterBootstrapRatio), so run-to-run spread widens
 * it. The rule that turns p and CI into a word is stats decide().
 */
export function verdictOf(base: VariantRun[], cand: VariantRun[], th: Thresholds): VerdictPart {
  const bootstrap = { resamples: th.resamples, confidence: th.confidence, seed: BOOTSTRAP_DEFAULTS.seed };
  const statOpts = { alpha: th.alpha, band: th.band, minSamples: th.minSamples, minRounds: th.minRounds, bootstrap };
  const paired = pairedRounds(base, cand);
  if (paired.base.length > 0) {
    const c = comparePaired(paired.base, paired.cand, statOpts);
    return {
      speedup: c.speedup,
      ciLo: c.ci[0],
      ciHi: c.ci[1],
      mode: 'paired',
      p: c.p,
      pMannWhitney: c.p_mw,
      pRunLevel: null,
      pKs: c.p_ks,
      rounds: c.rounds,
      verdict: c.verdict,
      reason: `paired over ${c.rounds} rounds of ${paired.runs} interleaved run(s): ${c.reason}`,
    };
  }
  const pb = pooled(base);
  const pc = pooled(cand);
  const c = compareSamples(pb, pc, statOpts);
  const common = { speedup: c.speedup, mode: 'unpaired' as const, pMannWhitney: c.p_mw, pKs: c.p_ks, rounds: null };
  if (c.verdict === 'UNSURE' && Math.min(pb.length, pc.length) < th.minSamples) {
    return { ...common, ciLo: c.ci[0], ciHi: c.ci[1], p: c.p_mw, pRunLevel: null, verdict: 'UNSURE', reason: c.reason };
  }
  const fewest = Math.min(base.length, cand.length);
  if (fewest < th.minRuns) {
    return {
      ...common,
      ciLo: c.ci[0],
      ciHi: c.ci[1],
      p: c.p_mw,
      pRunLevel: null,
      verdict: 'UNSURE',
      reason:
        `${base.length} run(s) of the baseline and ${cand.length} of the variant: run-to-run variation is unmeasured with fewer than ${th.minRuns} runs per variant ` +
        `(Mann-Whitney on samples ${pEquals(c.p_mw)}, sample CI [${c.ci[0].toFixed(3)}, ${c.ci[1].toFixed(3)}]); more repetitions decide it (sweep submit --until-confident)`,
    };
  }
  // The run-level rule (stats/unpaired.ts unpairedRunTest), shared with history's steps.
  const runTest = unpairedRunTest(base.map((r) => r.samples), cand.map((r) => r.samples));
  const pRun = runTest.pRun;
  const cluster = clusterBootstrapRatio(base.map((r) => r.samples), cand.map((r) => r.samples), bootstrap);
  const lo = Math.min(cluster.lo, c.ci[0]);
  const hi = Math.max(cluster.hi, c.ci[1]);
  const p = Math.max(c.p_mw, pRun);
  const d = decide({ test: null, p, speedup: c.speedup, ci: [lo, hi], alpha: th.alpha, band: th.band, confidence: th.confidence, more: 'repetitions' });
  const tests = `Mann-Whitney on samples ${pEquals(c.p_mw)}; on ${base.length}+${cand.length} run medians: Welch ${pEquals(runTest.pWelch)}, Mann-Whitney ${pEquals(runTest.pRunMedians)}, run-level ${pEquals(pRun)}`;
  return { ...common, ciLo: lo, ciHi: hi, p, pRunLevel: pRun, verdict: d.verdict, reason: `${tests}; ${d.reason}${shapeNote(c.p_mw, c.p_ks, th.alpha)}` };
}
