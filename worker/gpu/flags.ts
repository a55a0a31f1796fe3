/**
 * Flags on a run, from what was requested and what was observed. A flagged
 * run is kept but left out of comparisons by default.
 *
 * - throttled: a slow-down reason (power cap, thermal, hardware slowdown,
 *   power brake) was active during the window, or the SM clock measured
 *   inside the kernel was below 90 % of the clock requested (lock, max, base).
 * - clock-mismatch: a clock was locked and the observed SM clock (nvidia-smi
 *   during the window, else the kernel's own measurement) differs from it by
 *   more than 3 % (at least 30 MHz).
 */
import type { RunFlag, TelemetrySummary } from '../../src/schema/telemetry.js';
import { THROTTLE_REASONS } from './telemetry.js';

export const THROTTLE_CLOCK_FRACTION = 0.9;
export const MISMATCH_FRACTION = 0.03;
export const MISMATCH_MIN_MHZ = 30;

/**
 * `requestedSmMhz`: the SM clock the worker locked (null at default clocks); `smClockMhz`: the median SM
 * clock measured inside the kernel; the summary's `sm_mhz`: nvidia-smi's reading over the window.
 */
export function runFlags(opts: { summary: TelemetrySummary | null; requestedSmMhz: number | null; smClockMhz: number | null }): { flags: RunFlag[]; notes: string[] } {
  const flags = new Set<RunFlag>();
  const notes: string[] = [];
  const seen = opts.summary?.reasons.filter((r) => THROTTLE_REASONS.has(r)) ?? [];
  if (seen.length > 0) {
    flags.add('throttled');
    notes.push(`throttle reasons active: ${seen.join(', ')}`);
  }
  const requested = opts.requestedSmMhz;
  if (requested !== null && opts.smClockMhz !== null && opts.smClockMhz < THROTTLE_CLOCK_FRACTION * requested) {
    flags.add('throttled');
    notes.push(`kernel SM clock ${Math.round(opts.smClockMhz)} MHz < 90% of the requested ${requested} MHz`);
  }
  if (requested !== null) {
    const observed = opts.summary?.sm_mhz?.median ?? opts.smClockMhz;
    if (observed !== null && observed !== undefined && Math.abs(observed - requested) > Math.max(MISMATCH_MIN_MHZ, MISMATCH_FRACTION * requested)) {
      flags.add('clock-mismatch');
      notes.push(`locked ${requested} MHz, observed ${Math.round(observed)} MHz`);
    }
  }
  return { flags: [...flags], notes };
}
