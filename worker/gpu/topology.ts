/**
 * How the GPUs of a host are connected, from `nvidia-smi topo -m`: for each
 * pair, NV# (NVLink, # links bonded), or the PCIe path (PIX: one switch,
 * PXB: several, PHB: through the host bridge, NODE: across host bridges of a
 * NUMA node, SYS: across the SMP interconnect between NUMA nodes). A run on
 * several GPUs records the links between the GPUs it used, and a compact
 * summary of them ("NV18" for two GPUs, "NV18 x6" for four on NVSwitch, or
 * "NV4 x2 + SYS x4") that is part of its environment group: runs over NVLink
 * and over PCIe are never mixed in one comparison.
 */
import type { Topology } from '../../src/schema/topology.js';
import { smi } from './smi.js';

// ANSI escapes: nvidia-smi underlines the header row when it writes to a terminal.
const ANSI = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');

/** The GPU x GPU matrix of `nvidia-smi topo -m` output: links["i-j"] for every pair of GPUs it lists. Null when there is none. */
export function parseTopoMatrix(text: string): { gpus: number[]; links: Record<string, string> } | null {
  const lines = text.replace(ANSI, '').split('\n').map((l) => l.replace(/\s+$/, ''));
  const headerAt = lines.findIndex((l) => /^\s+GPU\d+(\s|$)/.test(l));
  if (headerAt < 0) return null;
  const columns = lines[headerAt]!.trim().split(/\s+/);
  const gpuCols = columns.map((c, i) => [i, /^GPU(\d+)$/.exec(c)?.[1]] as const).filter(([, n]) => n !== undefined).map(([i, n]) => [i, Number(n)] as const);
  const gpus: number[] = [];
  const links: Record<string, string> = {};
  for (const line of lines.slice(headerAt + 1)) {
    const m = /^GPU(\d+)\s+(.*)$/.exec(line);
    if (!m) {
      if (line.trim() === '' || /^Legend/.test(line.trim())) break;
      continue; // NIC rows
    }
    const row = Number(m[1]);
    gpus.push(row);
    const cells = m[2]!.trim().split(/\s+/);
    for (const [col, idx] of gpuCols) {
      const cell = cells[col];
      if (cell === undefined || idx === row) continue;
      const key = row < idx ? `${row}-${idx}` : `${idx}-${row}`;
      links[key] ??= cell;
    }
  }
  return gpus.length ? { gpus, links } : null;
}

/** The topology of `gpus` (a subset of the host's) from the parsed matrix; a pair the matrix lacks reads '?'. */
export function topologyOf(matrix: { links: Record<string, string> } | null, gpus: readonly number[]): Topology {
  const sorted = [...gpus].sort((a, b) => a - b);
  const links: Record<string, string> = {};
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length; j++) {
      const key = `${sorted[i]}-${sorted[j]}`;
      links[key] = matrix?.links[key] ?? '?';
    }
  }
  return { gpus: sorted, links, summary: summarize(Object.values(links)) };
}

/** "NV18" (one pair), "NV18 x6", "NV4 x2 + SYS x4"; '' for fewer than two GPUs. */
export function summarize(links: readonly string[]): string {
  const count = new Map<string, number>();
  for (const l of links) count.set(l, (count.get(l) ?? 0) + 1);
  return [...count.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([l, n]) => (n === 1 ? l : `${l} x${n}`))
    .join(' + ');
}

/** `nvidia-smi topo -m`, parsed; null when nvidia-smi gives no matrix (one GPU, an old driver, no nvidia-smi). */
export async function probeTopology(): Promise<{ gpus: number[]; links: Record<string, string> } | null> {
  const r = await smi(['topo', '-m']);
  return r.ok ? parseTopoMatrix(r.stdout) : null;
}
