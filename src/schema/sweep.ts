/**
 * The sweep file: one zod schema, from which the TypeScript types are derived.
 * Every axis takes a list (a single value is read as a list of one).
 */
import { z } from 'zod';
import { BACKENDS, DTYPES, MODEL_NAMES } from './variants.js';

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
}).refine((s) => s.topk <= s.experts, { error: 'expected topk <= experts' });
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
const ModelSchema = z.enum(MODEL_NAMES as [string, ...string[]], { error: `expected a model preset: ${MODEL_NAMES.join(' | ')}` });
const VariantSchema = safeName('a variant name');

/** An axis: a non-empty list of values; a single value stands for a list of one. */
function axis<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(item).min(1, { error: 'expected at least one value' }));
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

export const BuildSchema = z.strictObject({
  flags: z
    .array(BuildFlagSchema, { error: 'expected a list of compiler flags' })
    .max(MAX_BUILD_FLAGS, { error: `expected at most ${MAX_BUILD_FLAGS} flags` })
    .refine((f) => new Set(f).size === f.length, { error: 'expected each flag once' })
    .default([]),
});
export type BuildSpec = z.infer<typeof BuildSchema>;

export const AXES = ['backend', 'variant', 'model', 'shape', 'tokens', 'dtype', 'warmup', 'iters', 'rotate', 'cold_l2', 'clock', 'power'] as const;

export const MatrixSchema = z.strictObject({
  backend: axis(BackendSchema).default(['cpu']),
  variant: axis(VariantSchema),
  model: axis(ModelSchema).optional(),
  shape: axis(ShapeSchema).optional(),
  tokens: axis(int(1, 4096, 'a token count')).default([1]),
  dtype: axis(DtypeSchema).default(['bf16']),
  warmup: axis(int(0, 100000, 'a warm-up count')).default([10]),
  iters: axis(int(1, 1000000, 'an iteration count')).default([100]),
  rotate: axis(int(1, 4096, 'a rotation count')).optional(),
  cold_l2: axis(z.boolean({ error: 'expected true or false' })).optional(),
  clock: axis(ClockSchema).default(['default']),
  power: axis(PowerSchema).default(['default']),
});

/** One exclude rule: a point is dropped when every field given here equals the point's. */
export const ExcludeSchema = z.strictObject({
  backend: BackendSchema.optional(),
  variant: VariantSchema.optional(),
  model: ModelSchema.optional(),
  shape: ShapeSchema.optional(),
  tokens: int(1, 4096, 'a token count').optional(),
  dtype: DtypeSchema.optional(),
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
    /** Run all variants of a point in one job, alternating in rounds (drift hits them alike). */
    interleave: z.boolean({ error: 'expected true or false' }).default(false),
    rounds: int(1, 1000, 'a round count').default(5),
    baseline: z.strictObject({ variant: VariantSchema }).optional(),
    /** Extra compiler flags (allow-listed): part of the sweep id and of every point's hash, since they change the build. */
    build: BuildSchema.optional(),
    matrix: MatrixSchema,
    exclude: z.array(ExcludeSchema, { error: 'expected a list of exclude rules' }).default([]),
  })
  .superRefine((s, ctx) => {
    const hasModel = s.matrix.model !== undefined;
    const hasShape = s.matrix.shape !== undefined;
    if (hasModel === hasShape) {
      ctx.addIssue({ code: 'custom', path: ['matrix'], message: 'expected exactly one of matrix.model or matrix.shape' });
    }
    if (s.baseline && !s.matrix.variant.includes(s.baseline.variant)) {
      ctx.addIssue({
        code: 'custom',
        path: ['baseline', 'variant'],
        message: `expected one of the sweep's variants (${s.matrix.variant.join(', ')}), got '${s.baseline.variant}'`,
      });
    }
  });

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
  tokens: z.int(),
  dtype: DtypeSchema,
  warmup: z.int(),
  iters: z.int(),
  rotate: z.int().nullable(),
  cold_l2: z.boolean(),
  clock: ClockSchema,
  power: PowerSchema,
  /** Extra compiler flags of the sweep; absent when there are none, so flag-less points keep their hashes. */
  build_flags: z.array(z.string()).min(1).optional(),
});
export type Point = z.infer<typeof PointSchema>;
