/**
 * Interleaving builds: one process of each build's binary per round, the
 * order of the builds rotated every round, warm-up in every process; then the
 * outputs of one build's rounds merged into one document in which every
 * sample carries its round index. Compare pairs the rounds of two builds
 * exactly as it pairs two variants interleaved inside one process
 * (results/compare.ts pairedRounds), so drift between rounds cancels.
 */
import { BENCH_SCHEMA_VERSION, type BenchOutput, type Energy, type VariantResult } from '../src/schema/bench-output.js';
import { summarize } from '../src/stats/index.js';

/** Order of the builds in round r: rotated by one each round, so no build always runs first. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** One build's per-round outputs (index = round) as one output; samples keep their round. */
export function mergeRounds(perRound: readonly BenchOutput[]): BenchOutput {
  const first = perRound[0];
  if (!first) throw new Error('mergeRounds: no rounds');
  const variants = first.results.map((r) => r.variant);
  const results: VariantResult[] = variants.map((variant) => {
    const parts = perRound.map((o) => o.results.find((r) => r.variant === variant)!);
    const samples = parts.flatMap((p) => p.samples_us);
    const rounds = parts.flatMap((p, round) => p.samples_us.map(() => round));
    const clocks = parts.every((p) => p.sm_clock_mhz === null) ? null : parts.flatMap((p) => p.sm_clock_mhz ?? p.samples_us.map(() => null));
    const windows = parts.map((p) => p.timed_window_unix_ms).filter((w): w is [number, number] => Array.isArray(w));
    const pass = parts.every((p) => p.check.pass);
    const worst = parts.reduce((a, p) => (p.check.rel_err === null || a === null ? null : Math.max(a, p.check.rel_err)), 0 as number | null);
    const s = samples.length > 0 && pass ? summarize(samples) : null;
    return {
      ...parts.at(-1)!,
      check: { ...parts.at(-1)!.check, pass, rel_err: worst },
      samples_us: pass ? samples : [],
      rounds: pass ? rounds : [],
      sm_clock_mhz: pass ? clocks : null,
      stats: s && { n: s.n, min: s.min, p10: s.p10, median: s.median, mean: s.mean, p90: s.p90, p99: s.p99, max: s.max, stdev: s.stdev },
      bandwidth_gbps: s ? first.bytes_per_iter / (s.median * 1e3) : null,
      timed_window_unix_ms: windows.length ? [Math.min(...windows.map((w) => w[0])), Math.max(...windows.map((w) => w[1]))] : null,
      ...(parts.some((p) => p.energy !== undefined) ? { energy: mergeEnergy(parts.map((p) => p.energy ?? null)) } : {}),
    };
  });
  return {
    ...first,
    schema: BENCH_SCHEMA_VERSION,
    config: { ...first.config, rounds: perRound.length, processes: perRound.length },
    check: { ...first.check, pass: perRound.every((o) => o.check.pass) },
    results,
  };
}

/**
 * Energy of one variant over its rounds: the mean joules per forward and mean power of the rounds that
 * measured them (each round's window is its own, after its timing); the last measured round's other
 * fields (counter resolution, window); null figures with the last reason when no round measured any.
 */
function mergeEnergy(parts: ReadonlyArray<Energy | null>): Energy | null {
  const measured = parts.filter((e): e is Energy & { joules_per_forward: number; mean_power_w: number } => e !== null && e.joules_per_forward !== null && e.mean_power_w !== null);
  if (measured.length === 0) return parts.filter((e) => e !== null).at(-1) ?? null;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    ...measured.at(-1)!,
    joules_per_forward: mean(measured.map((e) => e.joules_per_forward)),
    mean_power_w: mean(measured.map((e) => e.mean_power_w)),
    rounds_measured: measured.length,
  };
}
