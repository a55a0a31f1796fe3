/**
 * Applying a point's clock and power requests to one GPU, and undoing them.
 *
 * Before anything is changed a marker file records what to restore; it is
 * removed only after the restore succeeded. So whatever kills the worker
 * (a crash, SIGKILL, a power cut), the next start on that GPU finds the marker
 * and restores first. Restores run in `finally` after every job and on
 * SIGINT/SIGTERM too.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Clock, Power } from '../../src/schema/sweep.js';
import { PermanentRunError } from '../errors.js';
import { processStart } from '../lease.js';
import type { GpuCapabilities } from './capabilities.js';
import { smi } from './smi.js';

export interface Marker {
  pid: number;
  /** Start time of `pid` (worker/lease.ts): with it, a marker of a live process is told from a dead one's. */
  pidStart?: string | null;
  gpu: number;
  uuid: string | null;
  /** Locked graphics clock in force: reset with -rgc. */
  clockLocked: boolean;
  /** Power limit before we changed it: set back with -pl. */
  previousPowerLimitW: number | null;
  at: string;
}

export interface Applied {
  clock: Clock;
  power: Power;
  /** The SM clock the GPU was asked to lock to (and the driver accepted), MHz; null at default clocks. */
  requestedSmMhz: number | null;
  powerLimitW: number | null;
}

export class GpuController {
  private marker: Marker | null = null;
  readonly markerPath: string;

  constructor(
    private readonly caps: GpuCapabilities,
    private readonly workerId: string,
    stateDir: string,
  ) {
    this.markerPath = join(stateDir, `gpu-control-${caps.uuid ?? `index${caps.index}`}.json`);
  }

  /**
   * At start: an earlier process died holding settings on this GPU; put them back. Returns what was restored.
   * A marker whose process is alive (same pid and start time) is another worker's settings in force: left alone.
   */
  async recoverFromMarker(): Promise<Marker | null> {
    if (!existsSync(this.markerPath)) return null;
    const stale = JSON.parse(readFileSync(this.markerPath, 'utf8')) as Marker;
    if (stale.pidStart && processStart(stale.pid) === stale.pidStart) return null;
    this.marker = stale;
    await this.restore();
    return stale;
  }

  /** The SM clock a request means on this GPU, MHz; null for `default` (nothing is locked). */
  requestedSmMhz(clock: Clock): number | null {
    if (clock === 'default') return null;
    if (clock === 'max') return this.caps.maxSmClockMhz ?? this.caps.graphicsClocksMhz[0] ?? null;
    if (clock === 'base') return this.caps.baseClockMhz;
    return clock.lock;
  }

  /** Fail the run as unsatisfiable unless this worker may and can honour the requests. Nothing is changed. */
  check(clock: Clock, power: Power): void {
    const who = `worker ${this.workerId} (GPU ${this.caps.index}${this.caps.name ? `, ${this.caps.name}` : ''})`;
    if (clock !== 'default') {
      if (!this.caps.clockControl.allowed) throw new PermanentRunError('unsatisfiable', `${who}: clock ${describe(clock)} requested, but clock control is ${this.caps.clockControl.reason}`);
      const requested = this.requestedSmMhz(clock);
      if (requested === null) throw new PermanentRunError('unsatisfiable', `${who}: clock ${describe(clock)} requested, but the GPU does not report that clock`);
      const supported = this.caps.graphicsClocksMhz;
      if (supported.length > 0 && !supported.includes(requested)) {
        throw new PermanentRunError('unsatisfiable', `${who}: clock ${requested} MHz is not a supported graphics clock (supported: ${supported.slice(0, 6).join(', ')}${supported.length > 6 ? ', …' : ''})`);
      }
    }
    if (typeof power === 'object') {
      if (!this.caps.powerControl.allowed) throw new PermanentRunError('unsatisfiable', `${who}: power limit ${power.limit} W requested, but power control is ${this.caps.powerControl.reason}`);
      const range = this.caps.powerLimitRangeW;
      if (range && (power.limit < range[0] || power.limit > range[1])) {
        throw new PermanentRunError('unsatisfiable', `${who}: power limit ${power.limit} W is outside the GPU's range ${range[0]}..${range[1]} W`);
      }
    }
  }

  /**
   * Apply the requests. The caller has run check() on them first (the worker does, before building, in
   * checkRequests), so they are not checked again here. A driver refusal restores what was done and fails the
   * run as unsatisfiable.
   */
  async apply(clock: Clock, power: Power): Promise<Applied> {
    const applied: Applied = { clock, power, requestedSmMhz: null, powerLimitW: this.caps.powerLimitW };
    const requested = this.requestedSmMhz(clock);
    const wantPower = typeof power === 'object' ? power.limit : null;
    if (requested === null && wantPower === null) return applied;
    this.writeMarker({
      pid: process.pid,
      pidStart: processStart(process.pid),
      gpu: this.caps.index,
      uuid: this.caps.uuid,
      clockLocked: requested !== null,
      previousPowerLimitW: wantPower !== null ? this.caps.powerLimitW : null,
      at: new Date().toISOString(),
    });
    const i = String(this.caps.index);
    if (requested !== null) {
      const r = await smi(['-i', i, '-lgc', `${requested},${requested}`]);
      if (!r.ok) {
        await this.restore();
        this.caps.clockControl = { allowed: false, reason: `refused by the driver (${r.message})` };
        throw new PermanentRunError('unsatisfiable', `worker ${this.workerId}: locking GPU ${i} to ${requested} MHz was refused by the driver: ${r.message}`);
      }
      applied.requestedSmMhz = requested;
    }
    if (wantPower !== null) {
      const r = await smi(['-i', i, '-pl', String(wantPower)]);
      if (!r.ok) {
        await this.restore();
        this.caps.powerControl = { allowed: false, reason: `refused by the driver (${r.message})` };
        throw new PermanentRunError('unsatisfiable', `worker ${this.workerId}: setting GPU ${i}'s power limit to ${wantPower} W was refused by the driver: ${r.message}`);
      }
      applied.powerLimitW = wantPower;
    }
    return applied;
  }

  /** Undo whatever the marker says is in force. Idempotent; the marker goes only when every step succeeded. */
  async restore(): Promise<void> {
    const m = this.marker;
    if (!m) return;
    const i = String(m.gpu);
    const problems: string[] = [];
    if (m.clockLocked) {
      const r = await smi(['-i', i, '-rgc']);
      if (!r.ok) problems.push(`-rgc: ${r.message}`);
    }
    if (m.previousPowerLimitW !== null) {
      const r = await smi(['-i', i, '-pl', String(m.previousPowerLimitW)]);
      if (!r.ok) problems.push(`-pl ${m.previousPowerLimitW}: ${r.message}`);
    }
    if (problems.length > 0) throw new Error(`could not restore GPU ${i}: ${problems.join('; ')} (marker kept at ${this.markerPath})`);
    rmSync(this.markerPath, { force: true });
    this.marker = null;
  }

  get holdsSettings(): boolean {
    return this.marker !== null;
  }

  private writeMarker(m: Marker): void {
    mkdirSync(dirname(this.markerPath), { recursive: true });
    writeFileSync(this.markerPath, JSON.stringify(m, null, 2));
    this.marker = m;
  }
}

export function describe(v: Clock | Power): string {
  return typeof v === 'string' ? `'${v}'` : JSON.stringify(v);
}
