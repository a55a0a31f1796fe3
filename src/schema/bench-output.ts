/**
 * The native binary's JSON document (csrc/CONTRACT.md, schema moefarm.bench/1).
 * Every field the farm relies on is validated here; extra fields are kept.
 */
import { z } from 'zod';
import { FP8_SCALES } from './variant-table.js';

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

/** Where a tunable's value came from (csrc/src/tunables.h): --tune, the tuning table, the variant table's default, the binary's heuristic. */
export const TUNE_SOURCES = ['flag', 'tuning_table', 'default', 'heuristic'] as const;
export const TunableValueSchema = z.looseObject({
  value: z.int(),
  source: z.enum(TUNE_SOURCES),
  /** tuning_table only: "tuning/FILE.json: entries.N". */
  origin: z.string().optional(),
});

/**
 * Energy per forward (one timed iteration, --repeat-work included) from the GPU's energy counter,
 * over a window of its own after the variant's timing (csrc/CONTRACT.md). Null figures come with
 * the reason (cpu backend, no NVML, counter not supported, window disabled).
 */
export const EnergySchema = z
  .looseObject({
    joules_per_forward: finite.nullable(),
    mean_power_w: finite.nullable(),
    reason: z.string().nullable(),
    window_ms: finite.optional(),
    forward_us: finite.optional(),
    forwards: z.int().nonnegative().optional(),
    counter_updates: z.int().nonnegative().optional(),
  })
  .superRefine((e, ctx) => {
    if ((e.joules_per_forward === null) !== (e.reason !== null))
      ctx.addIssue({ code: 'custom', path: ['reason'], message: 'expected a reason exactly when joules_per_forward is null' });
  });
export type Energy = z.infer<typeof EnergySchema>;

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
    /** Every tunable of the variant, with its value and source (absent from binaries before tunables). */
    tunables: z.record(z.string(), TunableValueSchema).optional(),
    /** cuda: how the variant launched (family, blocks, threads, shared memory); cpu: null. */
    launch: z.looseObject({ blocks: z.int(), threads: z.int() }).nullable().optional(),
    /** Null when the variant was not timed; absent from binaries before energy. */
    energy: EnergySchema.nullable().optional(),
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
    /** Shared experts of the layer (0: none) and their intermediate size. */
    shared_experts: z.int().nonnegative().optional(),
    shared_inter: z.int().nonnegative().optional(),
    tokens: z.int(),
    dtype: z.string(),
    /** With dtype fp8: what one scale covers (--fp8-scales); null for the other dtypes. */
    fp8_scales: z.enum(FP8_SCALES).nullable().optional(),
    warmup: z.int(),
    iters: z.int(),
    /** False with --no-tuning-table. */
    tuning_table: z.boolean().optional(),
    /** Minimum energy window per variant (ms); 0: none. */
    energy_ms: z.int().nonnegative().optional(),
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
  /** --gpus N: one device's share of bytes_per_iter (mean) and the largest device's (max: the slowest device's floor). */
  bytes_per_gpu: z.object({ mean: z.number().nonnegative(), max: z.number().nonnegative() }).optional(),
  check: z.looseObject({ pass: z.boolean() }),
  results: z.array(VariantResultSchema).min(1),
});
export type BenchOutput = z.infer<typeof BenchOutputSchema>;
