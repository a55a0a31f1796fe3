/**
 * History of one point across builds: every result keeps the identity of the
 * binary that produced it (Result.sourceHash, Result.gitCommit), so the same
 * point (Result.pointHash: its parameters with the variant, independent of
 * the sweep) can be followed from build to build. Builds are ordered by git
 * ancestry where it is known (BuildSource: every build of the series has a
 * commit; by generation, the number of commits reachable from the commit, so
 * an ancestor always comes first; a dirty build right after its commit), else
 * by the time their first run of the point finished; each series says which.
 * Steps between builds are found
 * by stats detectSteps (compare's run-level rule against the previous level,
 * and a minimum relative change).
 */
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { RunParamsSchema } from '../schema/job.js';
import { DEFAULT_CHANGEPOINT_ALPHA, DEFAULT_MIN_CHANGE, detectSteps, median, quantileSorted, unpairedRunTest, type StepKind } from '../stats/index.js';
import { DEFAULT_SM_CLOCK_BAND_MHZ, envKey, envLabel, runEnvironment } from './environment.js';
import { pointLabel } from './load.js';
import { readSamples } from '../db/samples.js';
import { DEFAULT_MIN_RUNS } from './compare.js';
import { tuneText, variantLabel } from '../sweep/tune.js';
import { annotationKey, loadAnnotations, type StepAnnotation } from './annotations.js';

export interface HistoryOptions {
  /** Result.pointHash (point with variant) or Run.groupHash (a job's group), or a prefix of at least 6 characters. */
  point?: string;
  /** Several point hashes at once (exact), e.g. every point of a sweep. */
  pointHashes?: string[];
  variant?: string;
  includeFlagged?: boolean;
  alpha?: number;
  minChange?: number;
  smClockBandMhz?: number;
  /** Keep each build's samples run by run (BuildEntry.runs), for a run-level test of a step. */
  keepRuns?: boolean;
}

export interface BuildEntry {
  sourceHash: string;
  gitCommit: string | null;
  /** Build inputs differed from gitCommit's (edits not committed). */
  dirty: boolean;
  /** Where the source came from first ("git origin/main", "dir ./csrc"); null for results older than BuildSource. */
  label: string | null;
  commitTime: string | null;
  generation: number | null;
  firstSeen: string | null;
  runs: number;
  samples: number;
  medianUs: number;
  /** Spread of the build's samples (the report draws it as a band around the medians). */
  p10Us: number;
  p90Us: number;
  /** Against the level before (detectSteps): median after / median before - 1. Null for the first build. */
  change: number | null;
  p: number | null;
  step: StepKind | null;
  /**
   * results annotate: this build's step at this point marked `expected` (the step stays, marked) or
   * `invalid` (the build is left out of step detection). Null when not annotated.
   */
  annotation: Pick<StepAnnotation, 'kind' | 'note' | 'updatedAt'> | null;
  /** With keepRuns: the samples of each run of this build (id and samples). */
  runSamples?: Array<{ runId: string; samples: number[] }>;
}

export interface HistorySeries {
  pointHash: string;
  point: string;
  variant: string;
  env: string;
  excludedFlagged: number;
  /** 'ancestry': every build has a known commit, ordered by git ancestry; 'first-seen': by the time first seen. */
  order: 'ancestry' | 'first-seen';
  builds: BuildEntry[];
}

export interface History {
  query: { point: string | null; variant: string | null };
  alpha: number;
  minChange: number;
  text: string;
  series: HistorySeries[];
}

/** Fewest runs on each side of a step: as compare (DEFAULT_MIN_RUNS), one run says nothing of run-to-run spread. */
const MIN_STEP_RUNS = DEFAULT_MIN_RUNS;

/**
 * A step's p: compare's unpaired rule (stats/unpaired.ts unpairedRunTest), not Mann-Whitney on pooled samples. The
 * samples of one run share its process and machine state, so two builds that differ only by a comment were
 * called a REGRESSION at p=1.2e-6 (+12.8%) by the pooled test; at the level of runs, the false-step rate is
 * about alpha (test/results/history-false-steps.test.ts).
 */
export function historyStepP(before: ReadonlyArray<readonly number[]>, after: ReadonlyArray<readonly number[]>): number | null {
  if (before.length < MIN_STEP_RUNS || after.length < MIN_STEP_RUNS) return null;
  return unpairedRunTest(before, after).p;
}

export async function loadHistory(db: Db, opts: HistoryOptions): Promise<History> {
  const alpha = opts.alpha ?? DEFAULT_CHANGEPOINT_ALPHA;
  const minChange = opts.minChange ?? DEFAULT_MIN_CHANGE;
  const smClockBandMhz = opts.smClockBandMhz ?? DEFAULT_SM_CLOCK_BAND_MHZ;
  let where: object;
  if (opts.point !== undefined) {
    if (!/^[A-Za-z0-9]{6,}$/.test(opts.point)) throw new UsageError(`--point: expected a point hash (at least 6 letters or digits), got "${opts.point}"`);
    where = { OR: [{ pointHash: { startsWith: opts.point } }, { run: { groupHash: { startsWith: opts.point } } }] };
  } else if (opts.pointHashes !== undefined) {
    where = { pointHash: { in: opts.pointHashes } };
  } else {
    throw new UsageError('history: expected --point HASH');
  }
  const results = await db.result.findMany({
    where: { AND: [where, opts.variant ? { variant: opts.variant } : {}, { run: { status: 'done' } }] },
    include: { run: { select: { id: true, finishedAt: true, flags: true, env: true, telemetry: true, workerId: true, params: true } } },
  });
  const workerIds = [...new Set(results.map((r) => r.run.workerId).filter((w): w is string => w !== null))];
  const workers = workerIds.length ? await db.worker.findMany({ where: { id: { in: workerIds } }, select: { id: true, gpu: true } }) : [];
  const gpuOf = new Map(workers.map((w) => [w.id, w.gpu]));

  interface Acc {
    pointHash: string;
    point: string;
    variant: string;
    env: string;
    excluded: number;
    builds: Map<string, { gitCommit: string | null; first: number; runs: number; samples: number[]; perRun: Array<{ runId: string; samples: number[] }> }>;
  }
  const series = new Map<string, Acc>();
  for (const r of results) {
    const params = RunParamsSchema.parse(JSON.parse(r.run.params));
    const p = params.find((x) => x.point.variant === r.variant && x.build === r.build && tuneText(x.point.tune) === r.tune)?.point ?? params[0]!.point;
    const env = runEnvironment({ point: p, envJson: r.run.env, telemetryJson: r.run.telemetry, workerGpu: r.run.workerId ? (gpuOf.get(r.run.workerId) ?? null) : null, smClockBandMhz });
    const key = `${r.pointHash}|${envKey(env)}`;
    let acc = series.get(key);
    if (!acc) {
      const { variant: _v, tune: _t, ...rest } = p;
      acc = { pointHash: r.pointHash, point: pointLabel(rest, ['warmup', 'iters', 'clock', 'power']), variant: variantLabel(r.variant, r.tune), env: envLabel(env), excluded: 0, builds: new Map() };
      series.set(key, acc);
    }
    const flagged = r.run.flags.split(',').filter(Boolean).length > 0;
    if (flagged && !opts.includeFlagged) {
      acc.excluded++;
      continue;
    }
    const t = r.run.finishedAt?.getTime() ?? Number.MAX_SAFE_INTEGER;
    const b = acc.builds.get(r.sourceHash) ?? { gitCommit: r.gitCommit, first: t, runs: 0, samples: [], perRun: [] };
    b.first = Math.min(b.first, t);
    b.runs++;
    const { samples } = readSamples(r);
    b.samples.push(...samples);
    // Run by run: the step test is run-level (as compare's); keepRuns also hands them to the caller.
    b.perRun.push({ runId: r.run.id, samples });
    acc.builds.set(r.sourceHash, b);
  }
  const hashes = [...new Set([...series.values()].flatMap((a) => [...a.builds.keys()]))];
  const sources = new Map((hashes.length ? await db.buildSource.findMany({ where: { hash: { in: hashes } } }) : []).map((b) => [b.hash, b]));
  const annotations = await loadAnnotations(db, [...new Set([...series.values()].map((a) => a.pointHash))]);
  const out: HistorySeries[] = [];
  for (const acc of series.values()) {
    const byTime = (a: [string, { first: number }], b: [string, { first: number }]) => a[1].first - b[1].first || a[0].localeCompare(b[0]);
    const entries = [...acc.builds.entries()];
    const known = entries.every(([h]) => sources.get(h)?.generation != null);
    // Ancestry: generation (an ancestor has fewer reachable commits), a dirty tree after its commit, then time.
    const ordered = known
      ? entries.sort((a, b) => {
          const sa = sources.get(a[0])!;
          const sb = sources.get(b[0])!;
          return sa.generation! - sb.generation! || (sa.gitCommit ?? '').localeCompare(sb.gitCommit ?? '') || Number(sa.dirty) - Number(sb.dirty) || byTime(a, b);
        })
      : entries.sort(byTime);
    const noteOf = (sourceHash: string) => annotations.get(annotationKey(sourceHash, acc.pointHash)) ?? null;
    // A build whose measurements here are marked invalid takes no part in step detection: the next build is
    // compared with the one before it.
    const counted = ordered.filter(([h]) => noteOf(h)?.kind !== 'invalid');
    const steps = detectSteps(
      counted.map(([build, b]) => ({ build, samples: b.samples, runs: b.perRun.map((x) => x.samples) })),
      { alpha, minChange, pValue: historyStepP },
    );
    const testOf = new Map(steps.tests.map((t) => [t.build, t]));
    out.push({
      pointHash: acc.pointHash,
      point: acc.point,
      variant: acc.variant,
      env: acc.env,
      excludedFlagged: acc.excluded,
      order: known ? 'ancestry' : 'first-seen',
      builds: ordered.map(([sourceHash, b]) => {
        const t = testOf.get(sourceHash) ?? null;
        const note = noteOf(sourceHash);
        const src = sources.get(sourceHash);
        const sorted = [...b.samples].sort((x, y) => x - y);
        return {
          sourceHash,
          gitCommit: src?.gitCommit ?? b.gitCommit,
          dirty: src?.dirty ?? /-dirty$/.test(b.gitCommit ?? ''),
          label: src?.label ?? null,
          commitTime: src?.commitTime ?? null,
          generation: src?.generation ?? null,
          firstSeen: b.first === Number.MAX_SAFE_INTEGER ? null : new Date(b.first).toISOString(),
          runs: b.runs,
          samples: b.samples.length,
          medianUs: median(b.samples),
          p10Us: quantileSorted(sorted, 0.1),
          p90Us: quantileSorted(sorted, 0.9),
          change: t ? t.change : null,
          p: t ? t.p : null,
          step: t ? t.kind : null,
          annotation: note ? { kind: note.kind, note: note.note, updatedAt: note.updatedAt } : null,
          ...(opts.keepRuns ? { runSamples: b.perRun } : {}),
        };
      }),
    });
  }
  out.sort((a, b) => a.point.localeCompare(b.point, 'en', { numeric: true }) || a.variant.localeCompare(b.variant) || a.env.localeCompare(b.env));
  return {
    query: { point: opts.point ?? null, variant: opts.variant ?? null },
    alpha,
    minChange,
    text:
      `steps: a build is a REGRESSION (slower) or IMPROVEMENT (faster) against the builds of the level before it when compare's unpaired rule gives p < ${alpha} ` +
      `(the larger of Mann-Whitney U on the pooled samples and the run-level p of the run medians: at least ${MIN_STEP_RUNS} runs a side) ` +
      `and the median moved by more than ${+(minChange * 100).toFixed(2)}%; builds in git ancestry order where every build of a series has a known commit ` +
      `(a dirty build, with edits not committed, right after its commit), else in the order first seen; each series says which; ` +
      `a step annotated expected stays and is marked, a build annotated invalid at a point is left out of step detection there (results annotate)`,
    series: out.filter((s) => s.builds.length > 0),
  };
}
