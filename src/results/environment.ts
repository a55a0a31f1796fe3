/**
 * The environment a run was measured in, reduced to the few things a
 * comparison must not mix: the GPU model, the clock and power settings the
 * point asked for, and the band of the SM clock actually observed during the
 * run (a locked clock can still sag; an unlocked one wanders), and for a run
 * on several GPUs how they were linked (NVLink or PCIe between each pair, the
 * worker's `nvidia-smi topo -m`: worker/gpu/topology.ts). These come from
 * what the worker recorded in Run.env (schema/job.ts RunEnvSchema); the
 * point's parameters and the telemetry are read only for runs whose record
 * lacks them (older workers). Run.env and Run.telemetry are JSON whose keys
 * grow over time, so everything here reads them leniently: an unknown key is
 * ignored, a missing one reads as 'n/a'.
 */
import { parseRunEnv } from '../schema/job.js';
import type { Point } from '../schema/sweep.js';
import { currentSummaryKeys } from '../schema/telemetry.js';

/** Width of the SM clock bands runs are grouped by, MHz (0: do not group by SM clock). */
export const DEFAULT_SM_CLOCK_BAND_MHZ = 50;

export interface RunEnvironment {
  gpu: string;
  clock: string;
  power: string;
  /**
   * The band of the SM clock the run ran at, e.g. "1950-1999 MHz", or 'n/a' when none was observed: of
   * telemetrySmMhz, else (nvidia-smi read no SM clock) of the kernel's own median that the run's telemetry
   * summary holds beside it.
   */
  smClockBand: string;
  /** nvidia-smi's median SM clock over the timed window, MHz (Run.env.telemetrySmMhz, else the telemetry's summary). */
  telemetrySmMhz: number | null;
  /** GPUs the run used (1 unless the point asked for more). */
  gpus: number;
  /** Several GPUs: the links between them, order-free ("NV18", "NV18 x6", "PIX + SYS x2"; '?' for unknown); '' for one. */
  topology: string;
}

export function settingText(v: Point['clock'] | Point['power']): string {
  if (typeof v === 'string') return v;
  return Object.entries(v)
    .map(([k, x]) => `${k}:${String(x)}`)
    .join(',');
}

function record(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function parseJson(text: string | null): unknown {
  if (text === null || text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

const positive = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : null);

/**
 * The two SM clocks a run's telemetry summary holds (Run.telemetry, JSON): nvidia-smi's median over the
 * window (summary.sm_mhz.median) and the kernel's own median (summary.sm_clock_mhz); null where absent.
 */
export function telemetryClocks(telemetryJson: string | null): { telemetrySmMhz: number | null; smClockMhz: number | null } {
  const summary = record(currentSummaryKeys(record(parseJson(telemetryJson))?.['summary']));
  if (!summary) return { telemetrySmMhz: null, smClockMhz: null };
  return { telemetrySmMhz: positive(record(summary['sm_mhz'])?.['median']), smClockMhz: positive(summary['sm_clock_mhz']) };
}

export function smClockBand(mhz: number | null, width: number): string {
  if (mhz === null || width <= 0) return 'n/a';
  const lo = Math.floor(mhz / width) * width;
  return `${lo}-${lo + width - 1} MHz`;
}

export interface EnvInput {
  point: Pick<Point, 'backend' | 'clock' | 'power'> & Partial<Pick<Point, 'gpus'>>;
  envJson: string | null;
  telemetryJson: string | null;
  /** The GPU of the worker that ran it (Worker.gpu), when known. */
  workerGpu: string | null;
  /** Width of the SM clock bands, MHz (0: one band for every clock). */
  smClockBandMhz: number;
}

export function runEnvironment(i: EnvInput): RunEnvironment {
  const env = parseRunEnv(i.envJson);
  const gpu = env?.gpu ? env.gpu : i.workerGpu ?? (i.point.backend === 'cpu' ? 'cpu' : 'unknown GPU');
  const telemetry = telemetryClocks(i.telemetryJson);
  const telemetrySmMhz = positive(env?.telemetrySmMhz) ?? telemetry.telemetrySmMhz;
  const gpus = env?.gpus !== undefined && env.gpus > 1 ? env.gpus : (i.point.gpus ?? 1);
  const summary = env?.topology?.summary;
  return {
    gpu,
    clock: settingText(env?.clock ?? i.point.clock),
    power: settingText(env?.power ?? i.point.power),
    // nvidia-smi's reading; where it read no SM clock, the kernel's as the telemetry summary holds it.
    smClockBand: smClockBand(telemetrySmMhz ?? telemetry.smClockMhz, i.smClockBandMhz),
    telemetrySmMhz,
    gpus,
    topology: gpus > 1 ? (summary ? summary : 'unknown links') : '',
  };
}

/** Key of the environment group (what runs must share to be compared): for several GPUs, their count and links too. */
export function envKey(e: RunEnvironment): string {
  return `${e.gpu}|${e.clock}|${e.power}|${e.smClockBand}` + (e.gpus > 1 ? `|${e.gpus}|${e.topology}` : '');
}

export function envLabel(e: RunEnvironment): string {
  return `${e.gpu} · clock=${e.clock} · power=${e.power} · sm=${e.smClockBand}` + (e.gpus > 1 ? ` · ${e.gpus} GPUs ${e.topology}` : '');
}
