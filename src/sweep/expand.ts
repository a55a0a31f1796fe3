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

type Shape = { model: string | null; hidden: number; inter: number; experts: number; topk: number };
type Combo = { values: Record<string, unknown>; index: Record<string, number> };

export function expandPoints(sweep: Sweep, builds: readonly PlanBuild[], file = 'sweep'): PlannedPoint[] {
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
  ];
  const product = axes.reduce((n, [, values]) => n * values.length, builds.length);
  if (product > HARD_MAX_COMBINATIONS) {
    const sizes = [...(builds.length > 1 ? [`build ${builds.length}`] : []), ...axes.filter(([, v]) => v.length > 1).map(([k, v]) => `${k === 'shapeSpec' ? (m.model ? 'model' : 'shape') : k} ${v.length}`)];
    throw new UsageError(
      `${file}: matrix: the axes multiply to ${product.toExponential(2)} combinations (${sizes.join(' x ')}), ` +
        `more than ${HARD_MAX_COMBINATIONS} even before excludes; split the sweep`,
    );
  }
  let combos: Combo[] = [{ values: {}, index: {} }];
  for (const [key, values] of axes) {
    const next: Combo[] = [];
    for (const c of combos) values.forEach((v, i) => next.push({ values: { ...c.values, [key]: v }, index: { ...c.index, [key]: i } }));
    combos = next;
  }
  const points: PlannedPoint[] = [];
  const seen = new Set<string>();
  for (const build of builds) {
    const shapeOf = (spec: unknown, i: number): Shape => {
      if (typeof spec !== 'string') return { model: null, ...(spec as Omit<Shape, 'model'>) };
      const preset = build.table.presets.find((p) => p.name === spec);
      if (!preset) {
        throw new UsageError(`${file}: matrix.model[${i}]: expected a model preset of ${build.label} (${build.table.presets.map((p) => p.name).join(' | ')}), got '${spec}'`);
      }
      return { model: spec, hidden: preset.hidden, inter: preset.inter, experts: preset.experts, topk: preset.topk };
    };
    for (const c of combos) {
      const v = c.values;
      const s = shapeOf(v['shapeSpec'], c.index['shapeSpec']!);
      const point: Point = {
        backend: v['backend'] as Point['backend'],
        variant: v['variant'] as string,
        model: s.model,
        hidden: s.hidden,
        inter: s.inter,
        experts: s.experts,
        topk: s.topk,
        tokens: v['tokens'] as number,
        dtype: v['dtype'] as Point['dtype'],
        warmup: v['warmup'] as number,
        iters: v['iters'] as number,
        rotate: v['rotate'] as number | null,
        cold_l2: v['cold_l2'] as boolean,
        clock: v['clock'] as Point['clock'],
        power: v['power'] as Point['power'],
        // Flags change the build, so they are part of the point (and its hash); absent when none, so old hashes hold.
        ...(build.flags.length > 0 ? { build_flags: [...build.flags] } : {}),
      };
      if (sweep.exclude.some((rule) => excludes(rule, point, build.name))) continue;
      const refusal = pointRefusal(build, point, c.index, m.model !== undefined);
      if (refusal) throw new UsageError(`${file}: ${refusal}`);
      const json = canonicalJson(point);
      const hash = sha256(json).slice(0, 16);
      if (seen.has(`${build.name}\0${hash}`)) continue;
      seen.add(`${build.name}\0${hash}`);
      const planned = { hash, point, build: build.name };
      // The canonical text of {build, hash, point}, kept for writing the plan: keys sorted, so it is canonicalJson(planned).
      plannedJson.set(planned, `{"build":${JSON.stringify(build.name)},"hash":"${hash}","point":${json}}`);
      points.push(planned);
    }
  }
  return points;
}

const plannedJson = new WeakMap<PlannedPoint, string>();

/**
 * canonicalJson of a run's points, from the text made at expansion (10,000 points: sorting every
 * point's keys a second time cost a tenth of the submit time).
 */
export function pointsJson(points: readonly PlannedPoint[]): string {
  return `[${points.map((p) => plannedJson.get(p) ?? canonicalJson(p)).join(',')}]`;
}

function excludes(rule: Exclude, point: Point, build: string): boolean {
  const entries = Object.entries(rule).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return false;
  return entries.every(([key, value]) => {
    if (key === 'build') return value === build;
    if (key === 'shape') {
      const s = value as NonNullable<Exclude['shape']>;
      return s.hidden === point.hidden && s.inter === point.inter && s.experts === point.experts && s.topk === point.topk;
    }
    return canonicalJson((point as Record<string, unknown>)[key]) === canonicalJson(value);
  });
}

export interface PlanOptions extends ResolveOptions {
  allowLarge?: boolean;
  maxRuns?: number;
  /** The sweep's builds, already resolved (resolveBuilds); default: resolved now. */
  builds?: PlanBuild[];
}

export function planSweep(sweep: Sweep, opts: PlanOptions = {}): Plan {
  const file = opts.file ?? 'sweep';
  const builds = opts.builds ?? resolveBuilds(sweep, opts);
  const id = sweepId(sweep, builds);
  const points = expandPoints(sweep, builds, file);
  if (points.length === 0) throw new UsageError(`${file}: exclude: every point of the matrix is excluded; nothing to run`);
  const groups = groupPoints(sweep, points, builds.length);
  const total = groups.length * sweep.repeat;
  const max = opts.maxRuns ?? DEFAULT_MAX_RUNS;
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

export function runId(sweepIdValue: string, groupHash: string, rep: number): string {
  return `${sweepIdValue}-${groupHash}-r${rep}`;
}

/**
 * Without interleave every point of every build is its own group (its hash is the point's when the
 * sweep has one build); with it, points that differ only by variant or build share one job.
 */
function groupPoints(sweep: Sweep, points: PlannedPoint[], builds: number): Array<{ hash: string; points: PlannedPoint[] }> {
  if (!sweep.interleave) return points.map((p) => ({ hash: builds === 1 ? p.hash : 'b' + contentHash([p.build, p.hash], 15), points: [p] }));
  const byKey = new Map<string, PlannedPoint[]>();
  for (const p of points) {
    const { variant: _variant, build_flags: _flags, ...rest } = p.point;
    const key = canonicalJson(rest);
    const list = byKey.get(key);
    if (list) list.push(p);
    else byKey.set(key, [p]);
  }
  return [...byKey.entries()].map(([key, pts]) => ({ hash: 'i' + contentHash(key, 15), points: pts }));
}
