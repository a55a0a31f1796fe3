/**
 * nvidia-smi, the one tool the worker uses to read and (when allowed) set a
 * GPU's clocks and power limit. Always called with an argument array and
 * always with `-i INDEX` (settings are never applied to another GPU), but
 * for `topo -m`, which only reads how the host's GPUs are connected.
 */
import { execa } from 'execa';
import { nvidiaSmi } from '../../src/config.js';

export const SMI = nvidiaSmi();

export interface SmiResult {
  ok: boolean;
  stdout: string;
  /** What nvidia-smi said when it refused (first lines of stdout/stderr). */
  message: string;
}

export async function smi(args: string[], timeoutMs = 15_000): Promise<SmiResult> {
  const r = await execa(SMI, args, { reject: false, timeout: timeoutMs });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
  const ok = !r.failed && r.exitCode === 0;
  return { ok, stdout: typeof r.stdout === 'string' ? r.stdout : '', message: ok ? '' : (text.split('\n').slice(0, 3).join(' ') || (r.failed ? String(r.shortMessage) : `exit ${r.exitCode}`)) };
}

/** A CSV value from `--format=csv,noheader,nounits`: null for [N/A], [Not Supported] and the like. */
export function field(value: string | undefined): string | null {
  const v = value?.trim();
  if (v === undefined || v === '' || v.startsWith('[') || v === 'N/A') return null;
  return v;
}

export function num(value: string | undefined): number | null {
  const v = field(value);
  if (v === null) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** One `--query-gpu` row of the GPU at `index`, by field name. */
export async function queryGpu(index: number, fields: readonly string[]): Promise<Record<string, string | null> | null> {
  const r = await smi(['-i', String(index), `--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits']);
  if (!r.ok) return null;
  const line = r.stdout.trim().split('\n')[0];
  if (!line) return null;
  const values = line.split(',');
  return Object.fromEntries(fields.map((f, i) => [f, field(values[i])]));
}

/** The host's GPU indices, from `nvidia-smi -L` ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-…)"); null when nvidia-smi fails. */
export async function listGpus(): Promise<number[] | null> {
  const r = await smi(['-L']);
  if (!r.ok) return null;
  return r.stdout
    .split('\n')
    .map((l) => /^GPU (\d+):/.exec(l.trim())?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}
