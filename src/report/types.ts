import { z } from 'zod';

/**
 * Everything a report shows, validated when rendering: the report is built
 * from database rows and user-written sweep names, and a malformed field
 * should fail with a path ("telemetry[0].power_w: ...") rather than draw a
 * broken chart. zod 4's z.number() already rejects NaN and Infinity.
 */

const Samples = z.array(z.number()).min(1);

export const DistributionVariantSchema = z.object({
  variant: z.string(),
  /** Latency samples, µs (what moe-bench reports; the report picks the unit it shows). */
  samples: Samples,
});

export const DistributionGroupSchema = z.object({
  /** Label of the sweep point and environment, e.g. "qwen3-30b-a3b T=64 bf16 · H100 default clocks". */
  group: z.string(),
  variants: z.array(DistributionVariantSchema).min(1),
});

export const SpeedupRowSchema = z
  .object({
    group: z.string(),
    variant: z.string(),
    baseline: z.string(),
    /** baseline latency / variant latency: > 1 means the variant is faster. */
    speedup: z.number().positive(),
    /** Confidence interval of the speedup. */
    lo: z.number().positive(),
    hi: z.number().positive(),
    /** Usually FASTER | SLOWER | SAME | UNSURE (src/stats/verdict.ts); other words are shown uncoloured. */
    verdict: z.string(),
  })
  .refine((r) => r.lo <= r.hi, { message: 'lo must be <= hi', path: ['lo'] });

const Metric = z.array(z.number().nullable());

export const TelemetryRunSchema = z
  .object({
    runId: z.string(),
    label: z.string(),
    /** Sample times in milliseconds since the run started. */
    t_ms: z.array(z.number()),
    /** One value per t_ms entry; null where the reading was unavailable. */
    sm_mhz: Metric,
    power_w: Metric,
    temp_c: Metric,
  })
  .superRefine((r, ctx) => {
    for (const key of ['sm_mhz', 'power_w', 'temp_c'] as const) {
      if (r[key].length !== r.t_ms.length) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `has ${r[key].length} values but t_ms has ${r.t_ms.length}; give one per time (null when unknown)`,
        });
      }
    }
  });

export const HistorySeriesSchema = z
  .object({
    point: z.string(),
    variant: z.string(),
    /** Build ids in build order. */
    builds: z.array(z.string()),
    /** Median latency per build, µs. */
    medians: z.array(z.number()),
    /** p10 and p90 of each build's samples, µs: the spread drawn around the medians. */
    p10: z.array(z.number()),
    p90: z.array(z.number()),
    /** A step detected at this build (REGRESSION / IMPROVEMENT), else null. */
    steps: z.array(z.enum(['REGRESSION', 'IMPROVEMENT']).nullable()),
  })
  .superRefine((h, ctx) => {
    for (const key of ['medians', 'p10', 'p90', 'steps'] as const) {
      if (h[key].length !== h.builds.length) ctx.addIssue({ code: 'custom', path: [key], message: `has ${h[key].length} entries but builds has ${h.builds.length}; give one per build` });
    }
  });

/** One row of the latency table: a point, a build and variant, its absolute latencies and its verdict. */
export const LatencyRowSchema = z.object({
  group: z.string(),
  variant: z.string(),
  /** What the verdict compares against ('' for the baseline itself). */
  baseline: z.string(),
  /** µs. */
  medianUs: z.number().positive(),
  p10Us: z.number().positive(),
  p90Us: z.number().positive(),
  runs: z.int().nonnegative(),
  /** Runs left out (flagged throttled or clock-mismatch). */
  excluded: z.int().nonnegative(),
  speedup: z.number().positive().nullable(),
  verdict: z.string(),
  /** Energy per forward (J) and mean power (W), medians over runs; null where none was measured (cpu). */
  joulesPerForward: z.number().nonnegative().nullable().optional(),
  meanPowerW: z.number().nonnegative().nullable().optional(),
});

/** A run that ended without a result. */
export const FailureRowSchema = z.object({
  runId: z.string(),
  status: z.string(),
  reason: z.string().nullable(),
  point: z.string(),
  worker: z.string().nullable(),
});

export const ReportDataSchema = z.object({
  title: z.string(),
  /** ISO timestamp or any human-readable time; shown as given. */
  generatedAt: z.string(),
  sweep: z.object({ id: z.string(), name: z.string() }).nullable(),
  /** Absolute latencies per point, build and variant (the numbers behind the speedups). */
  latencies: z.array(LatencyRowSchema).default([]),
  distributions: z.array(DistributionGroupSchema),
  speedups: z.array(SpeedupRowSchema),
  telemetry: z.array(TelemetryRunSchema),
  history: z.array(HistorySeriesSchema),
  /** Runs without a result (at most a few hundred), and how many there are in all. */
  failures: z.array(FailureRowSchema).default([]),
  failuresTotal: z.int().nonnegative().default(0),
  /** Free-text lines, e.g. describeThresholds() and the device name. */
  notes: z.array(z.string()),
});

/** Validated report data (defaults filled in). */
export type ReportData = z.infer<typeof ReportDataSchema>;
/** What callers pass to renderReport (latencies and failures optional). */
export type ReportDataInput = z.input<typeof ReportDataSchema>;
export type DistributionGroup = z.infer<typeof DistributionGroupSchema>;
export type SpeedupRow = z.infer<typeof SpeedupRowSchema>;
export type TelemetryRun = z.infer<typeof TelemetryRunSchema>;
export type HistorySeries = z.infer<typeof HistorySeriesSchema>;
export type LatencyRow = z.infer<typeof LatencyRowSchema>;
export type FailureRow = z.infer<typeof FailureRowSchema>;
