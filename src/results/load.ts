/**
 * Loading a sweep's results from the database into plain records, grouped by
 * point (all parameters but the variant) and by the environment the run was
 * measured in (results/environment.ts), so that only like is compared with
 * like.
 */
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { RunParamsSchema } from '../schema/job.js';
import type { Point } from '../schema/sweep.js';
import { canonicalJson } from '../util/hash.js';
import { readSamples } from '../db/samples.js';
import { tuneText, variantLabel } from '../sweep/tune.js';
import { DEFAULT_SM_CLOCK_BAND_MHZ, envKey, envLabel, runEnvironment, type RunEnvironment } from './environment.js';

export interface VariantRun {
  runId: string;
  /** The sweep's name of the build that produced it ('default' for a sweep with one build). */
  build: string;
  rep: number;
  /** Run.groupHash: the job's group (one point, or every variant of an interleaved point). */
  groupHash: string;
  /** Result.pointHash: the point with this variant (the key of history). */
  pointHash: string;
  samples: number[];
  rounds: number[];
  flags: string[];
  interleaved: boolean;
  sourceHash: string;
  gitCommit: string | null;
  finishedAt: Date | null;
  hasTelemetry: boolean;
  /** Energy per forward (J) and mean power (W) from the GPU's counter; null where not measured (the CPU backend). */
  joulesPerForward: number | null;
  meanPowerW: number | null;
  /** The device name the binary reported (the tuning table's key); null for results before it was stored. */
  device: string | null;
}

/**
 * A run known by its samples alone (compare's input built from something other than this database's rows,
 * such as a history's runs): the fields given, and for the rest nothing recorded (no rounds, flags,
 * commit, time, telemetry, energy or device; rep 0, not interleaved).
 */
export function sampledRun(run: Pick<VariantRun, 'runId' | 'build' | 'samples' | 'sourceHash'> & Partial<VariantRun>): VariantRun {
  return {
    rep: 0,
    groupHash: '',
    pointHash: '',
    rounds: [],
    flags: [],
    interleaved: false,
    gitCommit: null,
    finishedAt: null,
    hasTelemetry: false,
    joulesPerForward: null,
    meanPowerW: null,
    device: null,
    ...run,
  };
}

export interface PointGroup {
  /** Point key + environment key. */
  key: string;
  /** Key of the point without its variant. */
  pointKey: string;
  /** Short label of the point (see labelGroups). */
  label: string;
  env: RunEnvironment;
  envLabel: string;
  point: Omit<Point, 'variant' | 'tune'>;
  /** One arm per build and variant measured at this point (armKey). */
  arms: Map<string, Arm>;
}

/** What one build and variant gave at one point: a thing a speedup is measured of. */
export interface Arm {
  build: string;
  /** The variant with its tunable setting when the sweep asked for one (`fused group=8`; tune.ts variantLabel). */
  variant: string;
  /** The variant's name alone, and its setting ('' when none): `variant` is the two together. */
  baseVariant: string;
  tune: string;
  runs: VariantRun[];
}

/** How an arm is named for people: the variant, prefixed by its build when the sweep has several. */
export function armLabel(build: string, variant: string, builds: readonly string[]): string {
  return builds.length > 1 ? `${build} ${variant}` : variant;
}

export function armKey(build: string, variant: string): string {
  return `${build}\0${variant}`;
}

/** What speedups are measured against: a variant (within each build) or a build (for each variant). */
export interface Baseline {
  by: 'variant' | 'build';
  name: string;
}

export interface SweepResults {
  sweepId: string;
  name: string;
  baselineFromSpec: Baseline | null;
  /** The sweep's builds in its order (its spec), then any others found in its results. */
  builds: string[];
  groups: PointGroup[];
  /** Runs that ended without a result, by status. */
  failures: Record<string, number>;
  /** Runs still waiting for an outcome. */
  queued: number;
}

export interface LoadOptions {
  /** Width of the SM clock bands (RunEnvironment.smClockBand), MHz; 0 groups every clock together. Default 50. */
  smClockBandMhz?: number;
}

export async function loadSweepResults(db: Db, sweepId: string, opts: LoadOptions = {}): Promise<SweepResults> {
  const smClockBandMhz = opts.smClockBandMhz ?? DEFAULT_SM_CLOCK_BAND_MHZ;
  const sweep = await db.sweep.findUnique({ where: { id: sweepId } });
  if (!sweep) throw new UsageError(`sweep ${sweepId}: no such sweep in the database (see \`moefarm results list\`)`);
  let baselineFromSpec: Baseline | null = null;
  const builds: string[] = [];
  try {
    const spec = JSON.parse(sweep.spec) as { baseline?: { variant?: string; build?: string }; resolvedBuilds?: Array<{ name: string }> };
    if (spec.baseline?.build) baselineFromSpec = { by: 'build', name: spec.baseline.build };
    else if (spec.baseline?.variant) baselineFromSpec = { by: 'variant', name: spec.baseline.variant };
    for (const b of spec.resolvedBuilds ?? []) builds.push(b.name);
  } catch {
    /* an unplanned sweep has no spec */
  }
  const runs = await db.run.findMany({
    where: { sweepId },
    include: { results: true },
    orderBy: [{ rep: 'asc' }, { id: 'asc' }],
  });
  const workerIds = [...new Set(runs.map((r) => r.workerId).filter((w): w is string => w !== null))];
  const workers = workerIds.length ? await db.worker.findMany({ where: { id: { in: workerIds } }, select: { id: true, gpu: true } }) : [];
  const gpuOf = new Map(workers.map((w) => [w.id, w.gpu]));
  const groups = new Map<string, PointGroup>();
  const failures: Record<string, number> = {};
  let queued = 0;
  for (const run of runs) {
    if (run.status === 'queued') {
      queued++;
      continue;
    }
    if (run.status !== 'done') {
      failures[run.status] = (failures[run.status] ?? 0) + 1;
      continue;
    }
    const params = RunParamsSchema.parse(JSON.parse(run.params));
    const first = params[0]!.point;
    const env = runEnvironment({
      point: first,
      envJson: run.env,
      telemetryJson: run.telemetry,
      workerGpu: run.workerId ? (gpuOf.get(run.workerId) ?? null) : null,
      smClockBandMhz,
    });
    const flags = run.flags ? run.flags.split(',').filter(Boolean) : [];
    for (const res of run.results) {
      const p = params.find((x) => x.point.variant === res.variant && x.build === res.build && tuneText(x.point.tune) === res.tune)?.point ?? first;
      // Builds of one point differ in flags at most, settings in tunables: the point (the compared thing) is the rest.
      const { variant: _v, build_flags: _f, tune: _t, ...rest } = p;
      const pointKey = canonicalJson(rest);
      const key = `${pointKey}|${envKey(env)}`;
      let g = groups.get(key);
      if (!g) {
        g = { key, pointKey, label: '', env, envLabel: envLabel(env), point: rest, arms: new Map() };
        groups.set(key, g);
      }
      if (!builds.includes(res.build)) builds.push(res.build);
      const label = variantLabel(res.variant, res.tune);
      const ak = armKey(res.build, label);
      const arm = g.arms.get(ak) ?? { build: res.build, variant: label, baseVariant: res.variant, tune: res.tune, runs: [] };
      const { samples, rounds } = readSamples(res);
      arm.runs.push({
        runId: run.id,
        build: res.build,
        rep: run.rep,
        groupHash: run.groupHash,
        pointHash: res.pointHash,
        samples,
        rounds,
        flags,
        interleaved: params.length > 1,
        sourceHash: res.sourceHash,
        gitCommit: res.gitCommit,
        finishedAt: run.finishedAt,
        hasTelemetry: run.telemetry !== null,
        joulesPerForward: res.joulesPerForward,
        meanPowerW: res.meanPowerW,
        device: res.device,
      });
      g.arms.set(ak, arm);
    }
  }
  const list = [...groups.values()];
  labelGroups(list);
  return { sweepId, name: sweep.name, baselineFromSpec, builds, groups: list, failures, queued };
}

/** A short label per group: the shape, then only the parameters that differ between groups. */
export function labelGroups(groups: PointGroup[]): void {
  const keys = ['backend', 'tokens', 'dtype', 'warmup', 'iters', 'rotate', 'cold_l2', 'clock', 'power'] as const;
  const varying = keys.filter((k) => new Set(groups.map((g) => canonicalJson(g.point[k]))).size > 1);
  for (const g of groups) g.label = pointLabel(g.point, varying);
}

export function pointLabel(p: Omit<Point, 'variant' | 'tune'>, extra: ReadonlyArray<keyof Omit<Point, 'variant' | 'tune'>> = []): string {
  const shape = p.model ?? `h${p.hidden}/i${p.inter}/e${p.experts}/k${p.topk}${p.shared_experts ? `/s${p.shared_experts}x${p.shared_inter}` : ''}`;
  // fp8 weights say their scales when they are not the default per-channel ones (fp8/tensor, fp8/block).
  const parts = [shape, `T=${p.tokens}`, p.fp8_scales ? `${p.dtype}/${p.fp8_scales}` : p.dtype];
  for (const k of extra) {
    if (k === 'tokens' || k === 'dtype' || k === 'fp8_scales') continue;
    const v = p[k];
    parts.push(`${k}=${typeof v === 'object' && v !== null ? Object.entries(v).map(([a, b]) => `${a}:${String(b)}`).join(',') : String(v)}`);
  }
  return parts.join(' ');
}
