/** `moefarm workers`: the workers that reported a heartbeat, live or gone silent, and what they can do. */
import { HEARTBEAT_TTL_S, readWorkers } from '../../worker/heartbeat.js';
import type { GpuCapabilities } from '../../worker/gpu/capabilities.js';
import type { Topology } from '../schema/topology.js';
import { renderTable, type Cell } from '../util/table.js';
import { withRedis } from './context.js';

interface Snapshot {
  id: string;
  state: 'running' | 'stopped';
  lastBeat: number;
  busyWith: string | null;
  processed: number;
  identity?: { pool?: string; backend?: string; host?: string; cpu?: string };
  capabilities?: GpuCapabilities | null;
  /** Several GPUs (moefarm worker --gpus): each one's capabilities and the links between them. */
  gpuCount?: number;
  gpus?: GpuCapabilities[];
  topology?: Topology | null;
  powerSource?: string;
}

/** The device cell: one GPU as before; several as "4x NAME #0,1,2,3 NV18 x6" (the links of topo -m). */
function deviceCell(w: Snapshot): string {
  const c = w.capabilities ?? null;
  const list = w.gpus ?? [];
  if (list.length > 1) {
    const names = [...new Set(list.map((g) => g.name ?? '?'))].join(' + ');
    const topo = w.topology?.summary ? ` ${w.topology.summary}` : '';
    return `${list.length}x ${names} #${list.map((g) => g.index).join(',')}${topo} cc ${c?.computeCapability ?? '?'} drv ${c?.driver ?? '?'}`;
  }
  return c ? `${c.name ?? '?'} #${c.index}${c.smCount ? ` ${c.smCount} SMs` : ''} cc ${c.computeCapability ?? '?'} drv ${c.driver ?? '?'}` : (w.identity?.cpu ?? '');
}

export async function workersCommand(opts: { json?: boolean }): Promise<void> {
  const list = await withRedis(async (redis) => {
    const out: Array<Snapshot & { status: string }> = [];
    for (const { snapshot, live } of await readWorkers(redis)) {
      const s = snapshot as unknown as Snapshot; // capabilities as the worker wrote them (GpuCapabilities)
      const ago = Math.round((Date.now() - s.lastBeat) / 1000);
      out.push({ ...s, status: live ? (s.busyWith ? 'busy' : 'idle') : s.state === 'stopped' ? `stopped ${ago}s ago` : `SILENT ${ago}s` });
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  });
  if (opts.json) {
    process.stdout.write(JSON.stringify(list, null, 2) + '\n');
    return;
  }
  if (list.length === 0) {
    process.stdout.write('no worker has reported yet\n');
    return;
  }
  const rows: Cell[][] = list.map((w) => {
    const c = w.capabilities ?? null;
    const clocks = c?.graphicsClocksMhz.length ? `${c.graphicsClocksMhz.at(-1)}-${c.graphicsClocksMhz[0]} MHz (${c.graphicsClocksMhz.length})` : '';
    const power = c?.powerLimitRangeW ? `${c.powerLimitW ?? '?'} W (${c.powerLimitRangeW[0]}-${c.powerLimitRangeW[1]})` : '';
    return [
      w.id,
      w.status,
      w.identity?.pool ?? '',
      w.identity?.backend ?? '',
      deviceCell(w),
      // GPUs owned: jobs of up to that many GPUs (at least one) go to this worker (sweep axis gpus).
      w.gpuCount ?? (c ? 1 : 0),
      clocks,
      power,
      w.powerSource ?? '',
      c ? (c.clockControl.allowed ? 'yes' : `no: ${c.clockControl.reason}`) : 'no GPU',
      c ? (c.powerControl.allowed ? 'yes' : `no: ${c.powerControl.reason}`) : 'no GPU',
      w.processed,
    ];
  });
  process.stdout.write(renderTable(['worker', 'status', 'pool', 'backend', 'device', 'gpus', 'graphics clocks', 'power limit', 'source', 'clock control', 'power control', 'jobs'], rows) + '\n');
  process.stdout.write(`(a worker is SILENT when its heartbeat is older than ${HEARTBEAT_TTL_S} s)\n`);
}
