/**
 * Expansion of a sweep into points and runs. Each point has a stable content
 * hash of its parameters (independent of the sweep's name), so the same point
 * in two sweeps is recognised as the same and its history can be followed.
 */
import { UsageError } from '../errors.js';
import type { Exclude, Point, Sweep } from '../schema/sweep.js';
import { canonicalJson, contentHash, sha256 } from '../util/hash.js';
import { resolveBuilds, type PlanBuild, type ResolveOptions } from './builds.js';
import { pointRefusal } from './validate.js';
import { checkTune, maxSettings, settingsPerPoint, tuneSettings } from './tune.js';

/** Runs a sweep may plan without --allow-large. */
export const DEFAULT_MAX_RUNS = 5000;

/**
 * Combinations of the axes (before excludes) that are ever expanded, even with
 * --allow-large: the expansion holds every combination in memory, and a
 * 1 MiB sweep file can name lists whose product is astronomical (ten axes of
 * a hundred values: 10^20). Checked by multiplying list lengths, before
 * anything is built.
 */
export const HARD_MAX_COMBINATIONS = 1_000_000;

/**
 * Runs (points x repeat) a sweep may ever plan, even with --allow-large, counted from the axes' lengths and
 * `repeat` before anything is expanded. The combination cap alone let `repeat: 10000` over a large matrix
 * through: 10 million plan rows were built and written, and the submit died out of memory before anything
 * reached Redis.
 */
export const HARD_MAX_RUNS = 1_000_000;

export interface PlannedPoint {
  /** Hash of the point's parameters (variant and flags included, source not): the key of history across builds. */
  hash: string;
  point: Point;
  /** Name of the build (PlanBuild.name) that runs it. */
  build: string;
}

/** A unit of work: one job on the queue. With interleave, one job holds every build and variant of a point. */
export interface PlannedRun {
  id: string; // sweepId-groupHash-rN: run id, BullMQ job id
  groupHash: string;
  rep: number;
  seed: number;
  points: PlannedPoint[];
}

export interface Plan {
  sweepId: string;
  sweep: Sweep;
  builds: PlanBuild[];
  points: PlannedPoint[];
  runs: PlannedRun[];
}

/**
 * The sweep's id: its normalised spec and the identity of every build's source, so the same file
 * over an edited kernel is a new sweep, and the same file over the same sources adds nothing.
 */
export function sweepId(sweep: Sweep, builds: readonly PlanBuild[]): string {
  return 's' + contentHash({ sweep, sources: builds.map((b) => [b.name, b.source.kind === 'bundle' ? b.source.hash : 'worker']) }, 12);
}

export function pointHash(point: Point): string {
  return contentHash(point, 16);
}

type Shape = { model: string | null; hidden: number; inter: number; experts: number; topk: number; shared_experts?: number | undefined; shared_inter?: number | undefined };
type Axes = ReadonlyArray<readonly [string, readonly unknown[]]>;

/**
 * The sweep's points, build by build, each in the axes' order (last axis fastest). `stopAfter`: stop once more
 * points than this have been found (the caller refuses the sweep), so a matrix far past the run limit is refused
 * after expanding a few thousand points, not a million (a 1,000,000-combination file took 35 s and 1.1 GB to be
 * refused when every combination was built first). `stopped.points`, when given and the expansion stopped: how
 * many points the whole matrix has after excludes (counted from the axes' indices, without building them).
 */
export function expandPoints(sweep: Sweep, builds: readonly PlanBuild[], file = 'sweep', stopAfter = Infinity, stopped?: { points: number }, gpuSettingsOnCpu = false): PlannedPoint[] {
  const m = sweep.matrix;
  const axes: Array<[string, readonly unknown[]]> = [
    ['backend', m.backend],
    ['variant', m.variant],
    ['shapeSpec', m.model ?? m.shape ?? []],
    ['tokens', m.tokens],
    ['dtype', m.dtype],
    ['warmup', m.warmup],
    ['iters', m.iters],
    ['rotate', m.rotate ?? [null]],
    ['cold_l2', m.cold_l2 ?? [false]],
    ['clock', m.clock],
    ['power', m.power],
    ['gpus', m.gpus ?? [1]],
    ['fp8_scales', m.fp8_scales ?? ['channel']],
  ];
  // matrix.tune multiplies a variant's points by its settings: bounded here by the variant with the most.
  const settings = maxSettings(sweep);
  const product = axes.reduce((n, [, values]) => n * values.length, builds.length * settings);
  const sizes = () => [
    ...(builds.length > 1 ? [`build ${builds.length}`] : []),
    ...axes.filter(([, v]) => v.length > 1).map(([k, v]) => `${k === 'shapeSpec' ? (m.model ? 'model' : 'shape') : k} ${v.length}`),
    ...(settings > 1 ? [`tune settings (at most) ${settings}`] : []),
  ];
  if (product > HARD_MAX_COMBINATIONS) {
    throw new UsageError(
      `${file}: matrix: the axes multiply to ${product.toExponential(2)} combinations (${sizes().join(' x ')}), ` +
        `more than ${HARD_MAX_COMBINATIONS} even before excludes; split the sweep`,
    );
  }
  const runsBound = product * sweep.repeat;
  if (runsBound > HARD_MAX_RUNS) {
    throw new UsageError(
      `${file}: repeat: ${sweep.repeat} repetitions of ${product} combinations (${[...sizes(), `repeat ${sweep.repeat}`].join(' x ')}) ` +
        `are ${runsBound.toExponential(2)} runs, more than ${HARD_MAX_RUNS} even before excludes; lower repeat or split the sweep`,
    );
  }
  const settingsOf = new Map(m.variant.map((v) => [v, tuneSettings(m.tune, v)]));
  // A model name means this build's preset: the shape axis is resolved per build (two builds may differ).
  const axesOf = builds.map((build): Axes => {
    checkTune(sweep, build, file);
    const shapes: Shape[] = axes[2]![1].map((spec, i) => {
      if (typeof spec !== 'string') return { model: null, ...(spec as Omit<Shape, 'model'>) };
      const preset = build.table.presets.find((p) => p.name === spec);
      if (!preset) {
        throw new UsageError(`${file}: matrix.model[${i}]: expected a model preset of ${build.label} (${build.table.presets.map((p) => p.name).join(' | ')}), got '${spec}'`);
      }
      return { model: spec, hidden: preset.hidden, inter: preset.inter, experts: preset.experts, topk: preset.topk, shared_experts: preset.shared_experts, shared_inter: preset.shared_inter };
    });
    return axes.map(([name, values]) => (name === 'shapeSpec' ? ([name, shapes] as const) : ([name, values] as const)));
  });
  checkExcludeRules(sweep, builds, axesOf, file);
  const points: PlannedPoint[] = [];
  const seen = new Set<string>();
  const names = axes.map(([name]) => name);
  for (let b = 0; b < builds.length; b++) {
    const build = builds[b]!;
    const axesB = axesOf[b]!;
    const tables = excludeTables(sweep.exclude, axesB, build.name);
    const excluded = (idx: readonly number[]) => tables?.some((checks) => checks.every(([axis, match]) => match[idx[axis]!])) ?? false;
    const all = combinations(axesB);
    for (let next = all.next(); !next.done; next = all.next()) {
      const idx = next.value;
      // Dropped by an exclude rule before its point is built: 1,000,000 combinations all excluded took 2.5 s to
      // refuse with a point built and compared for each.
      if (excluded(idx)) continue;
      const v = (axis: number) => axesB[axis]![1][idx[axis]!];
      const s = v(2) as Shape;
      const variant = v(1) as string;
      const base: Point = {
        backend: v(0) as Point['backend'],
        variant,
        model: s.model,
        hidden: s.hidden,
        inter: s.inter,
        experts: s.experts,
        topk: s.topk,
        // Shared experts only when the layer has them, so points without them keep their hashes.
        ...(s.shared_experts ? { shared_experts: s.shared_experts, shared_inter: s.shared_inter! } : {}),
        tokens: v(3) as number,
        dtype: v(4) as Point['dtype'],
        warmup: v(5) as number,
        iters: v(6) as number,
        rotate: v(7) as number | null,
        cold_l2: v(8) as boolean,
        clock: v(9) as Point['clock'],
        power: v(10) as Point['power'],
        // Absent for one GPU, so points from before the gpus axis keep their hashes.
        ...((v(11) as number) > 1 ? { gpus: v(11) as number } : {}),
        // Absent for channel (the binary's default), so fp8 points from before the axis keep their hashes; a value
        // on a point of another dtype stays, for pointRefusal to refuse.
        ...(v(12) !== 'channel' ? { fp8_scales: v(12) as NonNullable<Point['fp8_scales']> } : {}),
        // Flags change the build, so they are part of the point (and its hash); absent when none, so old hashes hold.
        ...(build.flags.length > 0 ? { build_flags: [...build.flags] } : {}),
      };
      if (sweep.exclude.some((rule) => excludes(rule, base, build.name))) continue;
      const index = Object.fromEntries(names.map((n, i) => [n, idx[i]!]));
      const refusal = pointRefusal(build, base, index, m.model !== undefined, gpuSettingsOnCpu);
      if (refusal) throw new UsageError(`${file}: ${refusal}`);
      // One point per tunable setting of the variant (matrix.tune); the setting is part of the point and its hash.
      for (const tune of settingsOf.get(variant) ?? [undefined]) {
        const point: Point = tune ? { ...base, tune } : base;
        const json = canonicalJson(point);
        const hash = sha256(json).slice(0, 16);
        if (seen.has(`${build.name}\0${hash}`)) continue;
        seen.add(`${build.name}\0${hash}`);
        const planned = { hash, point, build: build.name };
        // The canonical text of {build, hash, point}, kept for writing the plan: keys sorted, so it is canonicalJson(planned).
        plannedJson.set(planned, `{"build":${JSON.stringify(build.name)},"hash":"${hash}","point":${json}}`);
        points.push(planned);
      }
      if (points.length > stopAfter) {
        if (stopped) {
          // Count the rest without building it: this build's remaining combinations, then every later build's.
          stopped.points = points.length;
          for (next = all.next(); !next.done; next = all.next()) if (!excluded(next.value)) stopped.points++;
          stopped.points += (builds.length - b - 1) * (product / builds.length);
        }
        return points;
      }
    }
  }
  return points;
}

/**
 * The axes' cartesian product one combination at a time, as value indices per axis (an odometer, last axis
 * fastest; the array is reused): never all of them in memory.
 */
function* combinations(axes: Axes): Generator<readonly number[]> {
  if (axes.some(([, values]) => values.length === 0)) return;
  const idx = axes.map(() => 0);
  for (;;) {
    yield idx;
    let i = axes.length - 1;
    while (i >= 0 && ++idx[i]! === axes[i]![1].length) idx[i--] = 0;
    if (i < 0) return;
  }
}

const plannedJson = new WeakMap<PlannedPoint, string>();

/**
 * canonicalJson of a run's points, from the text made at expansion (10,000 points: sorting every
 * point's keys a second time cost a tenth of the submit time).
 */
export function pointsJson(points: readonly PlannedPoint[]): string {
  return `[${points.map(pointJson).join(',')}]`;
}

/** canonicalJson of one planned point ({build, hash, point}). */
export function pointJson(p: PlannedPoint): string {
  return plannedJson.get(p) ?? canonicalJson(p);
}

function excludes(rule: Exclude, point: Point, build: string): boolean {
  const entries = Object.entries(rule).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return false;
  return entries.every(([key, value]) => (key === 'build' ? value === build : fieldMatches(key, value, point)));
}

/** Whether one field of an exclude rule matches a point, or the fields of a point that one axis value sets. */
function fieldMatches(key: string, value: unknown, point: Partial<Point>): boolean {
  if (key === 'gpus') return (point.gpus ?? 1) === value;
  if (key === 'fp8_scales') return (point.fp8_scales ?? 'channel') === value;
  if (key === 'shape') {
    const s = value as NonNullable<Exclude['shape']>;
    return (
      s.hidden === point.hidden && s.inter === point.inter && s.experts === point.experts && s.topk === point.topk &&
      (s.shared_experts || undefined) === (point.shared_experts || undefined) &&
      (s.shared_experts ? s.shared_inter : undefined) === (point.shared_experts ? point.shared_inter : undefined)
    );
  }
  return canonicalJson((point as Record<string, unknown>)[key]) === canonicalJson(value);
}

/** The point fields an axis value sets: a shape sets model and dimensions, every other axis its own field. */
function fieldsOf(axis: string, value: unknown): Partial<Point> {
  if (axis === 'gpus') return { gpus: value as number };
  if (axis === 'fp8_scales') return value === 'channel' ? { fp8_scales: undefined } : { fp8_scales: value as NonNullable<Point['fp8_scales']> };
  return (axis === 'shapeSpec' ? value : { [axis]: value }) as Partial<Point>;
}

/** The sweep file's name of the axis that sets an exclude rule's field. */
function axisField(key: string, byModel: boolean): string {
  return key === 'model' || key === 'shape' ? (byModel ? 'model' : 'shape') : key;
}

/**
 * Every exclude rule must be able to drop a point: each of its fields names a value the sweep has (in a build
 * the rule applies to), and the rule is not empty. A rule that matches nothing is a typo (`tokens: 3` where the
 * axis has 1 and 2, a variant spelled wrong) that would leave the points it meant to drop in the sweep, run
 * and then refused by a worker or binary. Checked on each axis's values, not on points: the matrix is their
 * product, so a rule matches some combination exactly when each of its fields matches some value.
 */
function checkExcludeRules(sweep: Sweep, builds: readonly PlanBuild[], axesOf: readonly Axes[], file: string): void {
  const byModel = sweep.matrix.model !== undefined;
  sweep.exclude.forEach((rule, i) => {
    const entries = Object.entries(rule).filter(([, v]) => v !== undefined);
    if (entries.length === 0) throw new UsageError(`${file}: exclude[${i}]: an empty rule excludes nothing; give the fields of the points to drop`);
    const buildNamesList = builds.map((b) => b.name);
    if (rule.build !== undefined && !buildNamesList.includes(rule.build)) {
      throw new UsageError(`${file}: exclude[${i}].build: '${rule.build}' is not one of the sweep's builds (${buildNamesList.join(', ')}); this rule would exclude nothing`);
    }
    let matched = false;
    const unmatched = new Set(entries.map(([k]) => k).filter((k) => k !== 'build'));
    builds.forEach((build, b) => {
      if (rule.build !== undefined && rule.build !== build.name) return;
      let all = true;
      for (const [key, value] of entries) {
        if (key === 'build') continue;
        const axis = axesOf[b]!.find(([name, values]) => (key === 'shape' ? name === 'shapeSpec' : values.length > 0 && key in fieldsOf(name, values[0])));
        const hit = axis !== undefined && axis[1].some((v) => fieldMatches(key, value, fieldsOf(axis[0], v)));
        if (hit) unmatched.delete(key);
        else all = false;
      }
      if (all) matched = true;
    });
    if (matched) return;
    const key = [...unmatched][0];
    if (key === undefined) throw new UsageError(`${file}: exclude[${i}]: matches no point of the matrix; this rule would exclude nothing`);
    const field = axisField(key, byModel);
    const given = Object.entries(sweep.matrix).find(([name]) => name === field)?.[1];
    const values = Array.isArray(given) ? given : [];
    const shownValue = key === 'shape' ? JSON.stringify(rule.shape) : typeof rule[key as keyof typeof rule] === 'object' ? JSON.stringify(rule[key as keyof typeof rule]) : String(rule[key as keyof typeof rule]);
    const list = values.length ? values.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', ') : '(not in the matrix)';
    const why = key === 'model' && !byModel ? 'names a model preset, but the sweep gives matrix.shape' : key === 'shape' && byModel ? 'is the shape of no preset of matrix.model' : `is not a value of matrix.${field} (${list.slice(0, 200)})`;
    throw new UsageError(`${file}: exclude[${i}].${key}: ${shownValue.slice(0, 100)} ${why}; this rule would exclude nothing`);
  });
}

/**
 * Exclude rules as tables over each axis's values (for each rule, the axes it constrains and which of their
 * values match), so that a combination of one build is dropped from its indices alone. A rule naming another
 * build does not apply; the build field of one naming this build is already matched. The same comparison as
 * `excludes`; the points that survive are still checked by it. Null when a rule names a field no axis sets.
 */
function excludeTables(rules: readonly Exclude[], axes: Axes, build: string): Array<Array<[number, boolean[]]>> | null {
  const tables: Array<Array<[number, boolean[]]>> = [];
  for (const rule of rules) {
    const entries = Object.entries(rule).filter(([, v]) => v !== undefined);
    if (entries.length === 0) continue; // an empty rule excludes nothing
    if (entries.some(([key, value]) => key === 'build' && value !== build)) continue;
    const checks: Array<[number, boolean[]]> = [];
    for (const [key, value] of entries) {
      if (key === 'build') continue;
      const axis = axes.findIndex(([name, values]) => (key === 'shape' ? name === 'shapeSpec' : values.length > 0 && key in fieldsOf(name, values[0])));
      if (axis < 0) return null;
      const [name, values] = axes[axis]!;
      checks.push([axis, values.map((v) => fieldMatches(key, value, fieldsOf(name, v)))]);
    }
    if (checks.length === 0) return null; // a rule that names only this build: leave it to `excludes`
    tables.push(checks);
  }
  return tables;
}

export interface PlanOptions extends ResolveOptions {
  allowLarge?: boolean;
  maxRuns?: number;
  /** The sweep's builds, already resolved (resolveBuilds); default: resolved now. */
  builds?: PlanBuild[];
  /**
   * Let CPU points ask for GPU clocks and power limits (refused from sweep files: no CPU measurement depends on
   * them). For the worker's own tests of GPU control, which run the CPU backend on machines with no GPU.
   */
  gpuSettingsOnCpu?: boolean;
}

export function planSweep(sweep: Sweep, opts: PlanOptions = {}): Plan {
  const file = opts.file ?? 'sweep';
  const builds = opts.builds ?? resolveBuilds(sweep, opts);
  const id = sweepId(sweep, builds);
  const max = opts.maxRuns ?? DEFAULT_MAX_RUNS;
  // Runs are groups x repeat, and a group holds one point, or (interleaved) at most one per variant and build.
  const pointsAllowed = Math.floor(max / sweep.repeat) * (sweep.interleave ? settingsPerPoint(sweep) * builds.length : 1);
  const stopped = { points: 0 };
  const points = expandPoints(sweep, builds, file, opts.allowLarge ? Infinity : pointsAllowed, stopped, opts.gpuSettingsOnCpu ?? false);
  if (points.length === 0) throw new UsageError(`${file}: exclude: every point of the matrix is excluded; nothing to run`);
  if (points.length > pointsAllowed && !opts.allowLarge) {
    const counted = stopped.points > 0 && !sweep.interleave;
    throw new UsageError(
      `${file}: matrix: expands to ${counted ? stopped.points * sweep.repeat : 'more than ' + max} runs ` +
        `(${counted ? stopped.points : 'over ' + pointsAllowed} points${builds.length > 1 ? ` over ${builds.length} builds` : ''} x repeat ${sweep.repeat}), more than the limit of ${max}; ` +
        'narrow the matrix or pass --allow-large',
    );
  }
  checkBaselineKept(sweep, points, file);
  const groups = groupPoints(sweep, points, builds.length);
  const total = groups.length * sweep.repeat;
  if (total > max && !opts.allowLarge) {
    throw new UsageError(
      `${file}: matrix: expands to ${total} runs (${points.length} points${builds.length > 1 ? ` over ${builds.length} builds` : ''} x repeat ${sweep.repeat}), more than the limit of ${max}; ` +
        'narrow the matrix or pass --allow-large',
    );
  }
  const runs: PlannedRun[] = [];
  for (let rep = 0; rep < sweep.repeat; rep++) {
    for (const g of groups) {
      runs.push({ id: runId(id, g.hash, rep), groupHash: g.hash, rep, seed: sweep.seed + rep, points: g.points });
    }
  }
  return { sweepId: id, sweep, builds, points, runs };
}

/** A baseline that every point's exclusion removed leaves nothing to compare against: refused, naming it. */
function checkBaselineKept(sweep: Sweep, points: readonly PlannedPoint[], file: string): void {
  const b = sweep.baseline;
  if (!b) return;
  if (b.variant !== undefined && !points.some((p) => p.point.variant === b.variant)) {
    throw new UsageError(`${file}: baseline.variant: '${b.variant}' is excluded from every point (by exclude:); nothing could be compared against it: keep it in some points or name another baseline`);
  }
  if (b.build !== undefined && !points.some((p) => p.build === b.build)) {
    throw new UsageError(`${file}: baseline.build: '${b.build}' is excluded from every point (by exclude:); nothing could be compared against it: keep it in some points or name another baseline`);
  }
}

export function runId(sweepIdValue: string, groupHash: string, rep: number): string {
  return `${sweepIdValue}-${groupHash}-r${rep}`;
}

/**
 * Without interleave every point of every build is its own group (its hash is the point's when the
 * sweep has one build); with it, points that differ only by variant, tunable setting or build share one job.
 */
function groupPoints(sweep: Sweep, points: PlannedPoint[], builds: number): Array<{ hash: string; points: PlannedPoint[] }> {
  if (!sweep.interleave) return points.map((p) => ({ hash: builds === 1 ? p.hash : 'b' + contentHash([p.build, p.hash], 15), points: [p] }));
  const byKey = new Map<string, PlannedPoint[]>();
  for (const p of points) {
    const { variant: _variant, build_flags: _flags, tune: _tune, ...rest } = p.point;
    const key = canonicalJson(rest);
    const list = byKey.get(key);
    if (list) list.push(p);
    else byKey.set(key, [p]);
  }
  return [...byKey.entries()].map(([key, pts]) => ({ hash: 'i' + contentHash(key, 15), points: pts }));
}
