/**
 * The sweep file: one zod schema, from which the TypeScript types are derived.
 * Every axis takes a list (a single value is read as a list of one).
 */
import { z } from 'zod';
import { BACKENDS, DTYPES } from './variants.js';
import { FP8_SCALES, MAX_GPUS } from './variant-table.js';
import { canonicalJson } from '../util/hash.js';

/** Names that end up in queue names, job ids and file names: no paths, no shell syntax. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const safeName = (what: string) =>
  z.string({ error: `expected ${what} (a string)` }).regex(SAFE_NAME, {
    error: `expected ${what}: 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
  });

const int = (min: number, max: number, what: string) =>
  z.int({ error: `expected ${what}: an integer in ${min}..${max}` }).min(min, { error: `expected ${what}: an integer in ${min}..${max}` }).max(max, { error: `expected ${what}: an integer in ${min}..${max}` });

export const ShapeSchema = z.strictObject({
  hidden: int(8, 65536, 'hidden size'),
  inter: int(8, 65536, 'expert intermediate size'),
  experts: int(1, 1024, 'number of experts'),
  topk: int(1, 1024, 'top-k'),
  /** Shared experts (router-independent, weight 1 each) and their intermediate size; absent or 0: none. */
  shared_experts: int(0, 64, 'number of shared experts').optional(),
  shared_inter: int(8, 65536, 'shared expert intermediate size').optional(),
})
  .refine((s) => s.topk <= s.experts, { error: 'expected topk <= experts' })
  .refine((s) => !s.shared_experts === (s.shared_inter === undefined), { error: 'expected shared_experts (> 0) and shared_inter together, or neither' });
export type Shape = z.infer<typeof ShapeSchema>;

export const ClockSchema = z.union(
  [z.literal('default'), z.literal('max'), z.literal('base'), z.strictObject({ lock: int(100, 5000, 'a locked clock in MHz') })],
  { error: "expected 'default', 'max', 'base' or {lock: MHz}" },
);
export type Clock = z.infer<typeof ClockSchema>;

export const PowerSchema = z.union(
  [z.literal('default'), z.literal('ac'), z.literal('battery'), z.strictObject({ limit: int(10, 2000, 'a power limit in W') })],
  { error: "expected 'default', 'ac', 'battery' or {limit: W}" },
);
export type Power = z.infer<typeof PowerSchema>;

const BackendSchema = z.enum(BACKENDS, { error: `expected a backend: ${BACKENDS.join(' | ')}` });
const DtypeSchema = z.enum(DTYPES, { error: `expected a dtype: ${DTYPES.join(' | ')}` });
/** What one scale of fp8 weights covers (the binary's --fp8-scales); meaningful with dtype fp8 only. */
const Fp8ScalesSchema = z.enum(FP8_SCALES, { error: `expected what an fp8 scale covers: ${FP8_SCALES.join(' | ')}` });
// Preset and variant names are checked against each build's own variant table (csrc/variants.json of
// that source) at submit, where the table is known: two builds may differ (sweep/validate.ts).
const ModelSchema = safeName('a model preset name');
const VariantSchema = safeName('a variant name');
const BuildNameSchema = safeName('a build name');

/**
 * An axis: a non-empty list of values, each once; a single value stands for a list of one. A value listed
 * twice is refused, not silently de-duplicated: `tokens: [1, 1]` is a typo or a `repeat` in disguise, and
 * the sweep would run fewer points than the file seems to ask for.
 */
function axis<T extends z.ZodType>(item: T) {
  return z.preprocess(
    (v) => (v === undefined || Array.isArray(v) ? v : [v]),
    z
      .array(item)
      .min(1, { error: 'expected at least one value' })
      .superRefine((values, ctx) => {
        const first = new Map<string, number>();
        values.forEach((v, i) => {
          const key = canonicalJson(v);
          const at = first.get(key);
          if (at === undefined) first.set(key, i);
          else ctx.addIssue({ code: 'custom', path: [i], input: v, message: `listed twice (also at [${at}]); list each value once (repeat: N runs a point N times)` });
        });
      }),
  );
}

/**
 * Extra compiler flags a sweep may ask for (`build: { flags: [...] }`). They
 * reach make as CXXFLAGS_EXTRA, which the Makefile hands to g++ (cpu) and, via
 * -Xcompiler, to nvcc's host compiler (cuda), inside a make recipe that runs
 * through /bin/sh. So every flag must be one that g++ accepts AND that is
 * inert in a shell: each is matched whole against this list (exact strings or
 * anchored patterns of letters, digits, '-', '=', '.'), never passed through
 * as free text. nvcc-only flags (-lineinfo, --use_fast_math, -maxrregcount=N,
 * -Xptxas=-v) would break the host compile; they are refused with a pointer
 * until the Makefile grows a separate NVCCFLAGS_EXTRA.
 */
export const BUILD_FLAG_RULES: ReadonlyArray<{ pattern: RegExp; doc: string }> = [
  { pattern: /^-O[0-3s]$/, doc: '-O0 -O1 -O2 -O3 -Os (the last -O wins over the Makefile\'s -O3)' },
  { pattern: /^-DNDEBUG$/, doc: '-DNDEBUG' },
  { pattern: /^-g[0-3]?$/, doc: '-g, -g0..-g3' },
  { pattern: /^-march=x86-64(-v[234])?$/, doc: '-march=x86-64, -march=x86-64-v2|v3|v4' },
  { pattern: /^-f(no-)?(omit-frame-pointer|unroll-loops|strict-aliasing|tree-vectorize)$/, doc: '-f[no-]omit-frame-pointer, -f[no-]unroll-loops, -f[no-]strict-aliasing, -f[no-]tree-vectorize' },
];
/** nvcc-only flags: recognised so the message can say why they are refused. */
const NVCC_ONLY_FLAG = /^(-lineinfo|--use_fast_math|-use_fast_math|-maxrregcount=\d+|-Xptxas(=|\s).*|--ptxas-options=.*)$/;
export const MAX_BUILD_FLAGS = 16;

/** One extra compiler flag, matched whole against BUILD_FLAG_RULES. Exported for the job schema (the worker's side). */
export const BuildFlagSchema = z.string({ error: 'expected a compiler flag (a string)' }).superRefine((flag, ctx) => {
  if (BUILD_FLAG_RULES.some((r) => r.pattern.test(flag))) return;
  const shown = JSON.stringify(flag.slice(0, 60));
  if (NVCC_ONLY_FLAG.test(flag)) {
    ctx.addIssue({ code: 'custom', message: `${shown} is an nvcc-only flag; the build passes extra flags to the host compiler (g++), which would reject it` });
    return;
  }
  ctx.addIssue({ code: 'custom', message: `${shown} is not an allowed compiler flag (allowed: ${BUILD_FLAG_RULES.map((r) => r.doc).join('; ')})` });
});

const FlagsSchema = z
  .array(BuildFlagSchema, { error: 'expected a list of compiler flags' })
  .max(MAX_BUILD_FLAGS, { error: `expected at most ${MAX_BUILD_FLAGS} flags` })
  .refine((f) => new Set(f).size === f.length, { error: 'expected each flag once' });

export const BuildSchema = z.strictObject({
  flags: FlagsSchema.default([]),
});
export type BuildSpec = z.infer<typeof BuildSchema>;

/**
 * A git ref as `git` takes it (HEAD, HEAD~2, origin/main, v1.2, a commit id): it goes to git as one
 * argument after --end-of-options, never through a shell; no leading '-', no whitespace, no '..' ranges.
 */
const GitRefSchema = z
  .string({ error: 'expected a git ref (a string)' })
  .regex(/^(?!-)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/~^@{}+-]{0,199}$/, { error: "expected a git ref such as HEAD, HEAD~1, origin/main or a commit id (no leading '-', no '..', no spaces)" });

/** One named build: its source (a git ref of the submitter's repository, or a folder as it is on disk) and extra flags. */
export const BuildSourceSpecSchema = z
  .strictObject({
    git: GitRefSchema.optional(),
    /** A folder holding the build inputs (like csrc/), relative to the directory the submit runs in. */
    dir: z.string({ error: 'expected a folder (a string)' }).min(1).max(1000).refine((d) => !d.includes('\0'), { error: 'expected a folder path' }).optional(),
    /** Extra compiler flags of this build (allow-listed); default: the sweep's build.flags. */
    flags: FlagsSchema.optional(),
  })
  .refine((b) => (b.git === undefined) !== (b.dir === undefined), { error: 'expected exactly one of git: REF or dir: FOLDER' });
export type BuildSourceSpec = z.infer<typeof BuildSourceSpecSchema>;

export const AXES = ['build', 'backend', 'variant', 'tune', 'model', 'shape', 'tokens', 'gpus', 'dtype', 'fp8_scales', 'warmup', 'iters', 'rotate', 'cold_l2', 'clock', 'power'] as const;

/** How long a job that takes several GPUs waits for a live worker of its pool with that many, s (gpus_wait_s). */
export const DEFAULT_GPUS_WAIT_S = 300;

/** A tunable's name as variants.json spells them (`slice`, `blocks_per_sm`). */
export const TUNABLE_NAME = /^[a-z][a-z0-9_]{0,31}$/;
/** Values one tunable may take in one sweep: each tried, so the list is short. */
export const MAX_TUNE_VALUES = 64;

/**
 * `matrix.tune`: per variant, per tunable, the values to try, e.g.
 * `{persistent-splitk: {slice: [16, 32, 64], threads: [256, 512]}}`. Each listed variant runs at every
 * combination of its tunables' values (the binary's `--tune VARIANT:slice=16,threads=256`); a variant
 * not listed runs as the binary would by default (tuning table, then the variant table's default).
 * The names and values are checked at submit against the variant table of each build's own source.
 */
const TuneValuesSchema = axis(z.int({ error: 'expected a tunable value: an integer' }))
  .refine((v) => v.length <= MAX_TUNE_VALUES, { error: `expected at most ${MAX_TUNE_VALUES} values` })
  .refine((v) => new Set(v).size === v.length, { error: 'expected each value once' });
export const TuneSchema = z.record(
  VariantSchema,
  z
    .record(
      z.string().regex(TUNABLE_NAME, { error: "expected a tunable name (lower-case letters, digits and '_', as in variants.json)" }),
      TuneValuesSchema,
      { error: 'expected a mapping of tunable names to lists of values, e.g. {slice: [16, 32]}' },
    )
    .refine((t) => Object.keys(t).length > 0, { error: 'expected at least one tunable' }),
  { error: 'expected a mapping of variant names to their tunables, e.g. {persistent-splitk: {slice: [16, 32]}}' },
);
export type Tune = z.infer<typeof TuneSchema>;

export const MatrixSchema = z.strictObject({
  /** Names from `builds`; default: every build listed there (or the one implicit build). */
  build: axis(BuildNameSchema).optional(),
  backend: axis(BackendSchema).default(['cpu']),
  variant: axis(VariantSchema),
  /** Tunable values per variant, tried as an axis (TuneSchema). */
  tune: TuneSchema.optional(),
  model: axis(ModelSchema).optional(),
  shape: axis(ShapeSchema).optional(),
  tokens: axis(int(1, 4096, 'a token count')).default([1]),
  /**
   * GPUs of one host the point runs on (expert parallelism: experts split across them, each holding its own
   * `tokens`); default 1. A job goes only to a worker that owns at least that many (README "Several GPUs").
   */
  gpus: axis(int(1, MAX_GPUS, 'a GPU count')).optional(),
  dtype: axis(DtypeSchema).default(['bf16']),
  /**
   * With dtype fp8: what one scale covers (channel, tensor, or 128 x 128 block); default channel, the binary's.
   * Points of another dtype take no scales: a tensor or block value there is refused at submit (exclude it),
   * and channel is the point as it is without the axis.
   */
  fp8_scales: axis(Fp8ScalesSchema).optional(),
  warmup: axis(int(0, 100000, 'a warm-up count')).default([10]),
  iters: axis(int(1, 1000000, 'an iteration count')).default([100]),
  rotate: axis(int(1, 4096, 'a rotation count')).optional(),
  cold_l2: axis(z.boolean({ error: 'expected true or false' })).optional(),
  clock: axis(ClockSchema).default(['default']),
  power: axis(PowerSchema).default(['default']),
});

/** One exclude rule: a point is dropped when every field given here equals the point's. */
export const ExcludeSchema = z.strictObject({
  build: BuildNameSchema.optional(),
  backend: BackendSchema.optional(),
  variant: VariantSchema.optional(),
  model: ModelSchema.optional(),
  shape: ShapeSchema.optional(),
  tokens: int(1, 4096, 'a token count').optional(),
  gpus: int(1, MAX_GPUS, 'a GPU count').optional(),
  dtype: DtypeSchema.optional(),
  fp8_scales: Fp8ScalesSchema.optional(),
  warmup: int(0, 100000, 'a warm-up count').optional(),
  iters: int(1, 1000000, 'an iteration count').optional(),
  rotate: int(1, 4096, 'a rotation count').optional(),
  cold_l2: z.boolean().optional(),
  clock: ClockSchema.optional(),
  power: PowerSchema.optional(),
});
export type Exclude = z.infer<typeof ExcludeSchema>;

export const SweepSchema = z
  .strictObject({
    name: safeName('a sweep name'),
    description: z.string().max(2000).optional(),
    pool: safeName('a pool name').default('default'),
    repeat: int(1, 10000, 'a repetition count').default(1),
    seed: int(0, 2 ** 31 - 1, 'a seed').default(1),
    timeout_s: int(1, 86400, 'a timeout in seconds').default(600),
    /** How long a point may wait for a power source (ac/battery) before it fails. */
    power_wait_s: int(0, 7 * 86400, 'a wait in seconds').default(3600),
    /**
     * How long a point with gpus > 1 waits for a live worker of the pool that owns that many GPUs before it
     * ends as unsatisfiable; default DEFAULT_GPUS_WAIT_S (left out of the normalised sweep when not given,
     * so sweeps written before the gpus axis keep their ids).
     */
    gpus_wait_s: int(0, 7 * 86400, 'a wait in seconds').optional(),
    /** Run all variants of a point in one job, alternating in rounds (drift hits them alike). */
    interleave: z.boolean({ error: 'expected true or false' }).default(false),
    rounds: int(1, 1000, 'a round count').default(5),
    /** What speedups are measured against: a variant (within each build) or a build (per variant). */
    baseline: z
      .strictObject({ variant: VariantSchema.optional(), build: BuildNameSchema.optional() })
      .refine((b) => (b.variant === undefined) !== (b.build === undefined), { error: 'expected exactly one of {variant: NAME} or {build: NAME}' })
      .optional(),
    /** Extra compiler flags (allow-listed): part of the sweep id and of every point's hash, since they change the build. */
    build: BuildSchema.optional(),
    /**
     * Named builds (the `build` axis): each a source and flags. Without it the sweep has one build,
     * `default`: the submitter's csrc/ as it is on disk (or `--source DIR`).
     */
    builds: z
      .record(BuildNameSchema, BuildSourceSpecSchema, { error: 'expected a mapping of build names to {git: REF} or {dir: FOLDER}' })
      .refine((b) => Object.keys(b).length > 0, { error: 'expected at least one build' })
      .refine((b) => Object.keys(b).length <= 16, { error: 'expected at most 16 builds' })
      .optional(),
    /** `worker`: each worker builds its own checkout (fixed-host fleets) and records what it built; nothing travels. */
    source: z.literal('worker', { error: "expected 'worker' (or leave it out: the source travels with the sweep)" }).optional(),
    matrix: MatrixSchema,
    exclude: z.array(ExcludeSchema, { error: 'expected a list of exclude rules' }).default([]),
  })
  .superRefine((s, ctx) => {
    const hasModel = s.matrix.model !== undefined;
    const hasShape = s.matrix.shape !== undefined;
    if (hasModel === hasShape) {
      ctx.addIssue({ code: 'custom', path: ['matrix'], message: 'expected exactly one of matrix.model or matrix.shape' });
    }
    if (s.baseline?.variant !== undefined && !s.matrix.variant.includes(s.baseline.variant)) {
      ctx.addIssue({
        code: 'custom',
        path: ['baseline', 'variant'],
        message: `expected one of the sweep's variants (${s.matrix.variant.join(', ')}), got '${s.baseline.variant}'`,
      });
    }
    const names = s.builds ? Object.keys(s.builds) : [DEFAULT_BUILD];
    (s.matrix.build ?? []).forEach((b, i) => {
      if (!names.includes(b)) ctx.addIssue({ code: 'custom', path: ['matrix', 'build', i], message: `expected one of the builds named under builds: (${names.join(', ')}), got '${b}'` });
    });
    if (s.baseline?.build !== undefined && !(s.matrix.build ?? names).includes(s.baseline.build)) {
      ctx.addIssue({ code: 'custom', path: ['baseline', 'build'], message: `expected one of the sweep's builds (${(s.matrix.build ?? names).join(', ')}), got '${s.baseline.build}'` });
    }
    for (const v of Object.keys(s.matrix.tune ?? {})) {
      if (!s.matrix.variant.includes(v)) {
        ctx.addIssue({ code: 'custom', path: ['matrix', 'tune', v], message: `expected one of the sweep's variants (${s.matrix.variant.join(', ')}), got '${v}'` });
      }
    }
    if (s.matrix.fp8_scales !== undefined && !s.matrix.dtype.includes('fp8')) {
      ctx.addIssue({ code: 'custom', path: ['matrix', 'fp8_scales'], message: `applies to dtype fp8 only (the scales of e4m3 weights), and matrix.dtype has no fp8 (${s.matrix.dtype.join(', ')})` });
    }
    if (s.source === 'worker' && s.builds) ctx.addIssue({ code: 'custom', path: ['source'], message: "expected either source: worker or builds:, not both (a worker's own checkout is one build)" });
  });

/** The name of the one build of a sweep that names none. */
export const DEFAULT_BUILD = 'default';

/** The builds a sweep runs, in order: matrix.build, else every build under builds:, else the implicit one. */
export function buildNames(s: { builds?: Record<string, unknown> | undefined; matrix: { build?: string[] | undefined } }): string[] {
  return s.matrix.build ?? (s.builds ? Object.keys(s.builds) : [DEFAULT_BUILD]);
}

export type SweepInput = z.input<typeof SweepSchema>;
export type Sweep = z.output<typeof SweepSchema>;

/** One point of a sweep: a full set of parameters for one benchmark run. */
export const PointSchema = z.strictObject({
  backend: BackendSchema,
  variant: VariantSchema,
  model: ModelSchema.nullable(),
  hidden: z.int(),
  inter: z.int(),
  experts: z.int(),
  topk: z.int(),
  /** Shared experts and their intermediate size; absent when the layer has none, so older points keep their hashes. */
  shared_experts: z.int().positive().optional(),
  shared_inter: z.int().positive().optional(),
  tokens: z.int(),
  /** GPUs the point runs on; absent for one, so one-GPU points keep the hashes they had before the gpus axis. */
  gpus: z.int().min(2).max(MAX_GPUS).optional(),
  dtype: DtypeSchema,
  /**
   * fp8 scales other than per channel (the binary's --fp8-scales); absent for channel, the default, so that fp8
   * points keep the hashes they had before the axis. Part of the point's identity, as dtype is.
   */
  fp8_scales: Fp8ScalesSchema.exclude(['channel']).optional(),
  warmup: z.int(),
  iters: z.int(),
  rotate: z.int().nullable(),
  cold_l2: z.boolean(),
  clock: ClockSchema,
  power: PowerSchema,
  /** Extra compiler flags of the sweep; absent when there are none, so flag-less points keep their hashes. */
  build_flags: z.array(z.string()).min(1).optional(),
  /**
   * Tunable values of the variant asked for with matrix.tune (the binary's --tune); absent when none, so
   * untuned points keep their hashes. Part of the point's identity: `fused group=1` and `fused group=8`
   * are two points.
   */
  tune: z.record(z.string().regex(TUNABLE_NAME), z.int()).optional(),
});
export type Point = z.infer<typeof PointSchema>;

/** The GPUs a point (or a job, whose points share it) takes. */
export function pointGpus(p: Pick<Point, 'gpus'>): number {
  return p.gpus ?? 1;
}
