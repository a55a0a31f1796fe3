/**
 * GPU telemetry stored with a run (Run.telemetry, JSON): compact columns of
 * samples taken by the worker's sampler during the binary's run, and their
 * summary. Times are ms from the sampler's start.
 */
import { z } from 'zod';

const col = z.array(z.number().nullable());

export const TelemetrySamplesSchema = z.object({
  t_ms: z.array(z.number()),
  sm_mhz: col,
  mem_mhz: col,
  power_w: col,
  temp_c: col,
  pstate: z.array(z.string().nullable()),
  /** Clock-event reason bitmask per sample (nvidia-smi clocks_event_reasons.active). */
  reasons: col,
});
export type TelemetrySamples = z.infer<typeof TelemetrySamplesSchema>;

const band = z.object({ min: z.number(), median: z.number(), max: z.number() }).nullable();

/**
 * The summary's keys as older workers wrote them, and their names now: `kernel_sm_mhz` is `sm_clock_mhz`.
 * currentSummaryKeys is the one place that reads them (TelemetrySummarySchema, and results/environment.ts
 * for its lenient reading): an old key stands in for its new one where the new one is absent.
 */
const SUMMARY_FORMER_KEYS: Readonly<Record<string, string>> = { kernel_sm_mhz: 'sm_clock_mhz' };

/** A stored summary with its former keys under their names now; anything but an object as it is. */
export function currentSummaryKeys(summary: unknown): unknown {
  if (summary === null || typeof summary !== 'object' || Array.isArray(summary)) return summary;
  const out: Record<string, unknown> = { ...summary };
  for (const [former, now] of Object.entries(SUMMARY_FORMER_KEYS)) {
    if (!(former in out)) continue;
    if (out[now] === undefined) out[now] = out[former];
    delete out[former];
  }
  return out;
}

export const TelemetrySummarySchema = z.preprocess(
  currentSummaryKeys,
  z.object({
    samples: z.int(),
    /** Sampling period asked of nvidia-smi, ms. */
    period_ms: z.number(),
    /** Samples inside the binary's timed window, when the binary reported one; else all. */
    window: z.enum(['timed', 'whole-run']),
    /** nvidia-smi's SM clock over the window: its median is Run.env.telemetrySmMhz. */
    sm_mhz: band,
    mem_mhz: band,
    power_w: band,
    temp_c: band,
    /** Union of clock-event reasons seen in the window, decoded to names. */
    reasons: z.array(z.string()),
    /** Median of the SM clock the binary measured inside the kernel (clock64 over %globaltimer): Run.env.smClockMhz. */
    sm_clock_mhz: z.number().nullable(),
  }),
);
export type TelemetrySummary = z.output<typeof TelemetrySummarySchema>;

export const TelemetrySchema = z.object({
  source: z.enum(['nvidia-smi', 'none']),
  samples: TelemetrySamplesSchema.nullable(),
  summary: TelemetrySummarySchema.nullable(),
  /** A run on several GPUs: each GPU's own summary (by nvidia-smi index); `summary` then spans them all (worker/gpu/telemetry.ts mergeTelemetry). */
  per_gpu: z.array(z.object({ index: z.int(), summary: TelemetrySummarySchema.nullable() })).optional(),
});
export type Telemetry = z.infer<typeof TelemetrySchema>;

/** Run flags: a flagged run is left out of comparisons by default. */
export const RUN_FLAGS = ['throttled', 'clock-mismatch'] as const;
export type RunFlag = (typeof RUN_FLAGS)[number];
