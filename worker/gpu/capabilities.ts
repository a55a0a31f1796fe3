/**
 * What this worker's GPU is and what the worker may do with it. Clock and
 * power control need all three: the operator's permission flag, root, and a
 * driver that accepts the call (learnt at the first attempt; a refusal turns
 * the capability off and says why).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { powerSupplyDir } from '../../src/config.js';
import type { PowerSource } from '../../src/schema/job.js';
import { num, queryGpu, smi } from './smi.js';

export interface Permission {
  allowed: boolean;
  /** Why not, in words a user can act on; null when allowed. */
  reason: string | null;
}


export interface GpuCapabilities {
  index: number;
  uuid: string | null;
  name: string | null;
  driver: string | null;
  computeCapability: string | null;
  /** From the native binary's device report, after the first run (nvidia-smi does not tell). */
  smCount: number | null;
  maxSmClockMhz: number | null;
  baseClockMhz: number | null;
  /** Supported graphics clocks, highest first. */
  graphicsClocksMhz: number[];
  powerLimitW: number | null;
  powerLimitRangeW: [number, number] | null;
  defaultPowerLimitW: number | null;
  powerSource: PowerSource;
  clockControl: Permission;
  powerControl: Permission;
}

const FIELDS = [
  'index',
  'uuid',
  'name',
  'driver_version',
  'compute_cap',
  'clocks.max.sm',
  'clocks.default_applications.graphics',
  'power.limit',
  'power.min_limit',
  'power.max_limit',
  'power.default_limit',
] as const;

export interface ProbeOptions {
  index: number;
  allowClockControl: boolean;
  allowPowerControl: boolean;
}

export async function probeGpu(opts: ProbeOptions): Promise<GpuCapabilities | null> {
  const row = await queryGpu(opts.index, FIELDS);
  if (!row) return null;
  const clocks = await smi(['-i', String(opts.index), '--query-supported-clocks=graphics', '--format=csv,noheader,nounits']);
  const graphicsClocksMhz = clocks.ok
    ? [...new Set(clocks.stdout.split('\n').map((l) => Number(l.trim())).filter((n) => Number.isFinite(n) && n > 0))].sort((a, b) => b - a)
    : [];
  const min = num(row['power.min_limit'] ?? undefined);
  const max = num(row['power.max_limit'] ?? undefined);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const permission = (flag: string, allowed: boolean): Permission => {
    if (!allowed) return { allowed: false, reason: `not permitted: the worker was started without ${flag}` };
    if (!root) return { allowed: false, reason: 'not permitted: the worker does not run as root (nvidia-smi needs it to change settings)' };
    return { allowed: true, reason: null };
  };
  return {
    index: opts.index,
    uuid: row['uuid'] ?? null,
    name: row['name'] ?? null,
    driver: row['driver_version'] ?? null,
    computeCapability: row['compute_cap'] ?? null,
    smCount: null,
    maxSmClockMhz: num(row['clocks.max.sm'] ?? undefined),
    baseClockMhz: num(row['clocks.default_applications.graphics'] ?? undefined),
    graphicsClocksMhz,
    powerLimitW: num(row['power.limit'] ?? undefined),
    powerLimitRangeW: min !== null && max !== null ? [min, max] : null,
    defaultPowerLimitW: num(row['power.default_limit'] ?? undefined),
    powerSource: readPowerSource(),
    clockControl: permission('--allow-clock-control', opts.allowClockControl),
    powerControl: permission('--allow-power-control', opts.allowPowerControl),
  };
}

/**
 * AC or battery, as Linux tells through /sys/class/power_supply: a `Mains`
 * supply online means AC; a battery and no online mains means battery. A
 * machine with no power-supply entries at all (a server) is on AC.
 */
export function readPowerSource(dir = powerSupplyDir()): PowerSource {
  if (!existsSync(dir)) return 'unknown';
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 'unknown';
  }
  if (entries.length === 0) return 'ac';
  let sawBattery = false;
  for (const e of entries) {
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, e, f), 'utf8').trim();
      } catch {
        return '';
      }
    };
    const type = read('type');
    if (type === 'Mains' && read('online') === '1') return 'ac';
    if (type === 'Battery') sawBattery = true;
  }
  return sawBattery ? 'battery' : 'ac';
}
