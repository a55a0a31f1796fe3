/** Who ran a job: host, CPU, GPU, driver, compiler. Attached to every outcome. */
import { cpus, hostname } from 'node:os';
import { execa } from 'execa';
import type { WorkerIdentity } from '../src/schema/job.js';
import { compilerVersion, type BuildBackend } from './build.js';

export interface GpuInfo {
  name: string;
  driver: string;
  uuid: string;
}

/** Read-only query of one GPU through nvidia-smi; null where there is none. */
export async function queryGpu(index: number): Promise<GpuInfo | null> {
  const r = await execa('nvidia-smi', ['-i', String(index), '--query-gpu=name,driver_version,uuid', '--format=csv,noheader'], { reject: false });
  if (r.exitCode !== 0 || r.failed) return null;
  const [name, driver, uuid] = r.stdout.trim().split(',').map((s) => s.trim());
  if (!name || !driver || !uuid) return null;
  return { name, driver, uuid };
}

/**
 * The worker's identity. Its default id names its device: host/pool/gpu0, host/pool/gpus0,1,2,3 for a
 * worker that owns several, host/pool/cpu for a CPU worker.
 */
export async function workerIdentity(opts: { pool: string; backend: BuildBackend; gpuIndex: number | null; gpuIndices?: readonly number[]; name?: string }): Promise<WorkerIdentity> {
  const host = hostname();
  const gpu = opts.backend === 'cuda' && opts.gpuIndex !== null ? await queryGpu(opts.gpuIndex) : null;
  const several = opts.gpuIndices && opts.gpuIndices.length > 1 ? opts.gpuIndices : null;
  const device = several ? `gpus${several.join(',')}` : opts.backend === 'cuda' ? `gpu${opts.gpuIndex ?? 0}` : 'cpu';
  const id = opts.name ?? `${host}/${opts.pool}/${device}`;
  return {
    id,
    host,
    pool: opts.pool,
    backend: opts.backend,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    gpu: gpu?.name ?? null,
    gpuIndex: opts.backend === 'cuda' ? opts.gpuIndex : null,
    ...(several ? { gpuIndices: [...several] } : {}),
    driver: gpu?.driver ?? null,
    compiler: await compilerVersion(opts.backend),
    pid: process.pid,
  };
}
