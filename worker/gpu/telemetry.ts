/**
 * Telemetry sampler: `nvidia-smi --query-gpu=… -lms PERIOD` runs beside the
 * binary (started before it, stopped after it) and its lines are collected
 * into compact columns, then summarised. Clock-event reasons are decoded to
 * NVML's names.
 *
 * start() returns only once the first sample has arrived (or nvidia-smi gave
 * up, or FIRST_SAMPLE_MS passed): the worker starts the timed binary after
 * it, so even a run shorter than one sampling period has a reading of the
 * conditions it started under. Without this, a tiny run on a loaded machine
 * (nvidia-smi's own start-up took longer than the run) ended with no sample.
 */
import { execa, type ResultPromise } from 'execa';
import type { Telemetry, TelemetrySamples, TelemetrySummary } from '../../src/schema/telemetry.js';
import { medianSorted, sortedCopy } from '../../src/stats/quantile.js';
import { SMI, field, num } from './smi.js';

/** NVML clock-event (formerly throttle) reason bits. */
export const REASON_BITS: ReadonlyArray<[number, string]> = [
  [0x1, 'GpuIdle'],
  [0x2, 'ApplicationsClocksSetting'],
  [0x4, 'SwPowerCap'],
  [0x8, 'HwSlowdown'],
  [0x10, 'SyncBoost'],
  [0x20, 'SwThermalSlowdown'],
  [0x40, 'HwThermalSlowdown'],
  [0x80, 'HwPowerBrakeSlowdown'],
  [0x100, 'DisplayClockSetting'],
];

/** Reasons that mean the GPU was slowed against its will: a run that saw one is flagged `throttled`. */
export const THROTTLE_REASONS = new Set(['SwPowerCap', 'HwSlowdown', 'SwThermalSlowdown', 'HwThermalSlowdown', 'HwPowerBrakeSlowdown']);

export function decodeReasons(mask: number): string[] {
  return REASON_BITS.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
}

const QUERY = ['clocks.sm', 'clocks.mem', 'power.draw', 'temperature.gpu', 'pstate'];
/** The reasons field was renamed in driver 535; older drivers know only the old name. */
const REASON_FIELDS = ['clocks_event_reasons.active', 'clocks_throttle_reasons.active'];

/** Longest wait for the first sample before the run starts anyway (nvidia-smi answers in well under a second). */
export const FIRST_SAMPLE_MS = 10_000;

export class TelemetrySampler {
  private child: ResultPromise | null = null;
  private firstSample: (() => void) | null = null;
  private t0 = 0;
  private buffer = '';
  private readonly cols: TelemetrySamples = { t_ms: [], sm_mhz: [], mem_mhz: [], power_w: [], temp_c: [], pstate: [], reasons: [] };
  /** Wall-clock time (ms since epoch) of each sample, for cutting to the timed window. */
  private readonly wall: number[] = [];

  constructor(
    private readonly gpu: number,
    readonly periodMs = 50,
  ) {}

  /** Resolves with whether a first sample came (false: nvidia-smi exited, or no sample within FIRST_SAMPLE_MS). */
  async start(firstSampleMs = FIRST_SAMPLE_MS): Promise<boolean> {
    for (const reasonField of REASON_FIELDS) {
      this.t0 = Date.now();
      const child = execa(SMI, ['-i', String(this.gpu), `--query-gpu=${[...QUERY, reasonField].join(',')}`, '--format=csv,noheader,nounits', '-lms', String(this.periodMs)], {
        reject: false,
        buffer: false,
        stdin: 'ignore',
      });
      const first = new Promise<'sample'>((resolve) => (this.firstSample = () => resolve('sample')));
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => this.feed(chunk));
      this.child = child;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), firstSampleMs)));
      // An unknown field makes nvidia-smi exit at once, without a sample: then try the old name.
      const what = await Promise.race([first, child.then(() => 'exited' as const), late]);
      clearTimeout(timer);
      this.firstSample = null;
      if (what === 'sample' || this.cols.t_ms.length > 0) return true;
      if (what === 'late') return false; // still running: it may yet sample; the run goes ahead
    }
    this.child = null;
    return false;
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      const v = line.split(',');
      if (v.length < 6) continue;
      const now = Date.now();
      this.wall.push(now);
      this.cols.t_ms.push(now - this.t0);
      this.cols.sm_mhz.push(num(v[0]));
      this.cols.mem_mhz.push(num(v[1]));
      this.cols.power_w.push(num(v[2]));
      this.cols.temp_c.push(num(v[3]));
      this.cols.pstate.push(field(v[4]));
      const r = field(v[5]);
      this.cols.reasons.push(r === null ? null : Number.parseInt(r, 16) || 0);
      this.firstSample?.();
    }
  }

  /**
   * Stop sampling; summarise the samples inside [from, to] (ms since epoch) when given, else all. `smClockMhz`,
   * the kernel's own median SM clock, is kept in the summary beside nvidia-smi's.
   */
  async stop(window: [number, number] | null, smClockMhz: number | null): Promise<Telemetry> {
    if (this.child) {
      this.child.kill('SIGTERM');
      await this.child.catch(() => undefined);
      this.child = null;
    }
    if (this.cols.t_ms.length === 0) return { source: 'nvidia-smi', samples: null, summary: null };
    let idx = this.cols.t_ms.map((_, i) => i);
    let kind: TelemetrySummary['window'] = 'whole-run';
    if (window) {
      const inside = idx.filter((i) => this.wall[i]! >= window[0] && this.wall[i]! <= window[1] + this.periodMs);
      if (inside.length > 0) {
        idx = inside;
        kind = 'timed';
      }
    }
    const pick = (c: Array<number | null>) => idx.map((i) => c[i] ?? null);
    let mask = 0;
    for (const r of pick(this.cols.reasons)) mask |= r ?? 0;
    return {
      source: 'nvidia-smi',
      samples: this.cols,
      summary: {
        samples: idx.length,
        period_ms: this.periodMs,
        window: kind,
        sm_mhz: band(pick(this.cols.sm_mhz)),
        mem_mhz: band(pick(this.cols.mem_mhz)),
        power_w: band(pick(this.cols.power_w)),
        temp_c: band(pick(this.cols.temp_c)),
        reasons: decodeReasons(mask),
        sm_clock_mhz: smClockMhz,
      },
    };
  }
}

function band(values: Array<number | null>): { min: number; median: number; max: number } | null {
  const v = sortedCopy(values.filter((x): x is number => x !== null));
  if (v.length === 0) return null;
  return { min: v[0]!, median: medianSorted(v), max: v[v.length - 1]! };
}

export function median(values: ReadonlyArray<number | null> | null | undefined): number | null {
  if (!values) return null;
  return band([...values])?.median ?? null;
}

/**
 * The telemetry of a run on several GPUs: each GPU sampled by its own sampler, `per_gpu` kept whole, and
 * one summary over all of them (the bands span every GPU's, the median is the median of the GPUs'
 * medians, the reasons are the union), so a run is flagged when any of its GPUs throttled and its clock
 * band is that of all its GPUs. The samples kept at the top are the first GPU's. One GPU: its telemetry as it is.
 */
export function mergeTelemetry(per: ReadonlyArray<{ index: number; telemetry: Telemetry }>): Telemetry | null {
  if (per.length === 0) return null;
  if (per.length === 1) return per[0]!.telemetry;
  const sums = per.map((p) => p.telemetry.summary).filter((s): s is TelemetrySummary => s !== null);
  const merge = (key: 'sm_mhz' | 'mem_mhz' | 'power_w' | 'temp_c') => {
    const bands = sums.map((s) => s[key]).filter((b): b is { min: number; median: number; max: number } => b !== null);
    if (bands.length === 0) return null;
    return { min: Math.min(...bands.map((b) => b.min)), median: median(bands.map((b) => b.median))!, max: Math.max(...bands.map((b) => b.max)) };
  };
  const summary: TelemetrySummary | null = sums.length
    ? {
        samples: sums.reduce((n, s) => n + s.samples, 0),
        period_ms: sums[0]!.period_ms,
        window: sums.every((s) => s.window === 'timed') ? 'timed' : 'whole-run',
        sm_mhz: merge('sm_mhz'),
        mem_mhz: merge('mem_mhz'),
        power_w: merge('power_w'),
        temp_c: merge('temp_c'),
        reasons: [...new Set(sums.flatMap((s) => s.reasons))],
        sm_clock_mhz: sums[0]!.sm_clock_mhz,
      }
    : null;
  return { source: 'nvidia-smi', samples: per[0]!.telemetry.samples, summary, per_gpu: per.map((p) => ({ index: p.index, summary: p.telemetry.summary })) };
}
