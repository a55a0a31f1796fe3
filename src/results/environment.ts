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

/** Width of the observed-clock bands runs are grouped by, MHz (0: do not group by observed clock). */
export const DEFAULT_CLOCK_BAND_MHZ = 50;

export interface RunEnvironment {
  gpu: string;
  clock: string;
  power: string;
  /** Observed SM clock band, e.g. "1950-1999 MHz", or 'n/a' when no clock was observed. */
  band: string;
  /** Median observed SM clock, MHz, when known (Run.env.observedSmMhz, else from the telemetry). */
  observedSmMhz: number | null;
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

/** The median SM clock of a run's telemetry: summary.sm_mhz.median, else summary.kernel_sm_mhz, else null. */
export function telemetrySmMhz(telemetryJson: string | null): number | null {
  const summary = record(record(parseJson(telemetryJson))?.['summary']);
  if (!summary) return null;
  const sm = record(summary['sm_mhz'])?.['median'];
  if (typeof sm === 'number' && Number.isFinite(sm) && sm > 0) return sm;
  const k = summary['kernel_sm_mhz'];
  if (typeof k === 'number' && Number.isFinite(k) && k > 0) return k;
  return null;
}

export function clockBand(mhz: number | null, width: number): string {
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
  bandMhz: number;
}

const positive = (x: number | null | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : null);

export function runEnvironment(i: EnvInput): RunEnvironment {
  const env = parseRunEnv(i.envJson);
  const gpu = env?.gpu ? env.gpu : i.workerGpu ?? (i.point.backend === 'cpu' ? 'cpu' : 'unknown GPU');
  // The worker's observedSmMhz is the telemetry window's median; where it had none, the telemetry's kernel clock.
  const observedSmMhz = positive(env?.observedSmMhz) ?? telemetrySmMhz(i.telemetryJson);
  const gpus = env?.gpus !== undefined && env.gpus > 1 ? env.gpus : (i.point.gpus ?? 1);
  const summary = env?.topology?.summary;
  return {
    gpu,
    clock: settingText(env?.clock ?? i.point.clock),
    power: settingText(env?.power ?? i.point.power),
    band: clockBand(observedSmMhz, i.bandMhz),
    observedSmMhz,
    gpus,
    topology: gpus > 1 ? (summary ? summary : 'unknown links') : '',
  };
}

/** Key of the environment group (what runs must share to be compared): for several GPUs, their count and links too. */
export function envKey(e: RunEnvironment): string {
  return `${e.gpu}|${e.clock}|${e.power}|${e.band}` + (e.gpus > 1 ? `|${e.gpus}|${e.topology}` : '');
}

export function envLabel(e: RunEnvironment): string {
  return `${e.gpu} · clock=${e.clock} · power=${e.power} · sm=${e.band}` + (e.gpus > 1 ? ` · ${e.gpus} GPUs ${e.topology}` : '');
}
