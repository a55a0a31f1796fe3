import { StatsInputError } from './errors.js';
import { mannWhitney } from './mannWhitney.js';
import { median } from './quantile.js';
import { assertPositive } from './validate.js';

/**
 * Steps in a latency history (one point + variant across builds).
 *
 * Method: each build is tested against the builds just before it, not by a
 * global best split, because a history can hold several steps and we want to
 * name the build that introduced each. The "before" side pools up to `window`
 * preceding builds (default 1: the previous build) but never reaches back past
 * the last flagged step, so a build is compared with its own level. A step is
 * flagged when Mann-Whitney p < alpha AND the medians moved by more than
 * minChange; the second condition keeps a farm's large samples from flagging
 * real but irrelevant 0.5% shifts. No multiple-comparison correction is made:
 * with alpha 0.01 and a 3% floor, false alarms on flat histories are rare (see
 * test/stats/changepoint.test.ts), and a flagged step is cheap to re-run.
 */

/** Significance level of each adjacent-build test. */
export const DEFAULT_CHANGEPOINT_ALPHA = 0.01;
/** Smallest relative change of the median that counts as a step (3%). */
export const DEFAULT_MIN_CHANGE = 0.03;

export interface BuildSamples {
  build: string;
  /** Latencies of this build (positive). */
  samples: readonly number[];
  /** The same samples, run by run (each run's own samples): for a `pValue` that tests at the level of runs. */
  runs?: ReadonlyArray<readonly number[]>;
}

/**
 * The test of one step: the "before" side's runs against the build's runs. Returns its p, or null when the
 * data cannot decide (too few runs): no step is flagged then.
 */
export type StepPValue = (before: ReadonlyArray<readonly number[]>, after: ReadonlyArray<readonly number[]>) => number | null;

export interface ChangepointOptions {
  /** Default DEFAULT_CHANGEPOINT_ALPHA (0.01). */
  alpha?: number;
  /** Default DEFAULT_MIN_CHANGE (0.03). */
  minChange?: number;
  /** Preceding builds pooled as the "before" side. Default 1. */
  window?: number;
  /**
   * The test of each step (default: Mann-Whitney U on the pooled samples, each build's samples as one run).
   * results/history.ts passes compare's run-level rule: pooled samples alone call identical builds different.
   */
  pValue?: StepPValue;
}

export type StepKind = 'REGRESSION' | 'IMPROVEMENT';

export interface StepTest {
  /** Index in the history of the build tested (the "after" side); >= 1. */
  index: number;
  /** First and last build of the "before" side. */
  fromBuild: string;
  toBuild: string;
  /** The build tested. */
  build: string;
  medianBefore: number;
  medianAfter: number;
  /** medianAfter / medianBefore - 1: > 0 is slower (latency went up). */
  change: number;
  /** Null: the test could not decide (too few runs); no step. */
  p: number | null;
  /** REGRESSION: slower; IMPROVEMENT: faster; null: no step. */
  kind: StepKind | null;
}

export interface ChangepointResult {
  /** One test per build after the first, in order. */
  tests: StepTest[];
  /** The flagged subset of `tests`. */
  steps: StepTest[];
}

export function detectSteps(history: readonly BuildSamples[], opts: ChangepointOptions = {}): ChangepointResult {
  const alpha = opts.alpha ?? DEFAULT_CHANGEPOINT_ALPHA;
  const minChange = opts.minChange ?? DEFAULT_MIN_CHANGE;
  const window = opts.window ?? 1;
  if (!Number.isInteger(window) || window < 1) {
    throw new StatsInputError(`detectSteps: window must be an integer >= 1, got ${window}`);
  }
  history.forEach((h, i) => assertPositive(`detectSteps: history[${i}] (${h.build}).samples`, h.samples));

  const tests: StepTest[] = [];
  let levelStart = 0; // first build of the current level
  for (let i = 1; i < history.length; i++) {
    const from = Math.max(levelStart, i - window);
    const before = history.slice(from, i).flatMap((h) => [...h.samples]);
    const cur = history[i] as BuildSamples;
    const after = cur.samples;
    const medianBefore = median(before);
    const medianAfter = median(after);
    const change = medianAfter / medianBefore - 1;
    const p = opts.pValue
      ? opts.pValue(history.slice(from, i).flatMap((h) => h.runs ?? [h.samples]), cur.runs ?? [cur.samples])
      : mannWhitney(before, after).p;
    let kind: StepKind | null = null;
    if (p !== null && p < alpha && Math.abs(change) > minChange) kind = change > 0 ? 'REGRESSION' : 'IMPROVEMENT';
    tests.push({
      index: i,
      fromBuild: (history[from] as BuildSamples).build,
      toBuild: (history[i - 1] as BuildSamples).build,
      build: cur.build,
      medianBefore,
      medianAfter,
      change,
      p,
      kind,
    });
    if (kind !== null) levelStart = i;
  }
  return { tests, steps: tests.filter((t) => t.kind !== null) };
}
