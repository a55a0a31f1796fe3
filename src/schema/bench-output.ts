/**
 * The native binary's JSON document (csrc/CONTRACT.md, schema moefarm.bench/1).
 * Every field the farm relies on is validated here; extra fields are kept.
 */
import { z } from 'zod';

export const BENCH_SCHEMA_VERSION = 'moefarm.bench/1';

// zod 4's number() refuses NaN and ±Infinity itself: no per-element refinement (it costs at thousands of samples).
const finite = z.number({ error: 'expected a finite number' });

export const StatsSchema = z.looseObject({
  n: z.int().nonnegative(),
  min: finite,
  p10: finite,
  median: finite,
  mean: finite,
  p90: finite,
  p99: finite,
  max: finite,
  stdev: finite,
});

export const CheckSchema = z.looseObject({
  pass: z.boolean(),
  rel_err: z.number().nullable(),
  tol: z.number(),
});

/** A variant whose check failed is not timed: no samples, no stats. */
export const VariantResultSchema = z
  .looseObject({
    variant: z.string(),
    check: CheckSchema,
    samples_us: z.array(finite),
    rounds: z.array(z.int().nonnegative()),
    sm_clock_mhz: z.array(z.number().nullable()).nullable(),
    stats: StatsSchema.nullable(),
    bandwidth_gbps: z.number().nullable(),
    waits: z.unknown().nullable().optional(),
    /** Wall-clock ms since the epoch around the timed iterations: GPU telemetry is cut to it. */
    timed_window_unix_ms: z.tuple([z.number(), z.number()]).nullable().optional(),
  })
  .superRefine((r, ctx) => {
    if (!r.check.pass) return;
    if (r.samples_us.length === 0) ctx.addIssue({ code: 'custom', path: ['samples_us'], message: 'expected at least one timing sample' });
    if (r.stats === null) ctx.addIssue({ code: 'custom', path: ['stats'], message: 'expected summary statistics' });
    if (r.rounds.length !== r.samples_us.length) ctx.addIssue({ code: 'custom', path: ['rounds'], message: 'expected one round index per sample' });
  });
export type VariantResult = z.infer<typeof VariantResultSchema>;

export const BenchOutputSchema = z.looseObject({
  schema: z.literal(BENCH_SCHEMA_VERSION, { error: `expected schema "${BENCH_SCHEMA_VERSION}"` }),
  config: z.looseObject({
    backend: z.enum(['cpu', 'cuda']),
    variants: z.array(z.string()).min(1),
    hidden: z.int(),
    inter: z.int(),
    experts: z.int(),
    topk: z.int(),
    tokens: z.int(),
    dtype: z.string(),
    warmup: z.int(),
    iters: z.int(),
  }),
  device: z.looseObject({
    kind: z.enum(['cpu', 'cuda']),
    name: z.string(),
    sm_count: z.int().nullable().optional(),
    compute_capability: z.string().nullable().optional(),
    driver: z.string().nullable().optional(),
  }),
  build: z.looseObject({
    source_hash: z.string(),
    git_commit: z.string().nullable().optional(),
    compiler: z.string(),
    flags: z.string(),
    arch: z.string(),
  }),
  bytes_per_iter: z.number().nonnegative(),
  check: z.looseObject({ pass: z.boolean() }),
  results: z.array(VariantResultSchema).min(1),
});
export type BenchOutput = z.infer<typeof BenchOutputSchema>;
