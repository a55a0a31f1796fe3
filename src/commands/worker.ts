import { cacheDir, csrcDir, stateDir, lockDurationMs, powerRetryMs } from '../config.js';
import { assertRedisReachable, createRedis } from '../queue/connection.js';
import { FarmWorker } from '../../worker/worker.js';
import { createLogger, type LogFormat } from '../util/log.js';
import { onShutdown } from './context.js';
import { UsageError } from '../errors.js';
import { listGpus } from '../../worker/gpu/smi.js';

export interface WorkerCommandOptions {
  pool: string;
  backend: 'cpu' | 'cuda';
  gpu?: number;
  /** --gpus: the GPUs this worker owns (indices, or every GPU nvidia-smi -L lists). */
  gpus?: number[] | 'all';
  arch: string;
  name?: string;
  once?: boolean;
  allowClockControl?: boolean;
  allowPowerControl?: boolean;
  /** commander's --no-telemetry sets this false. */
  telemetry?: boolean;
  testHooks?: boolean;
  /** --log-format / MOEFARM_LOG_FORMAT (default pretty). */
  logFormat?: LogFormat;
}

export async function workerCommand(opts: WorkerCommandOptions): Promise<void> {
  await assertRedisReachable();
  let gpus: number[] | undefined;
  if (opts.gpus === 'all') {
    gpus = (await listGpus()) ?? undefined;
    if (!gpus || gpus.length === 0) throw new UsageError("moefarm worker: --gpus all: nvidia-smi -L lists no GPU on this host; give the indices (--gpus 0,1) or leave --gpus out");
  } else if (opts.gpus) {
    gpus = opts.gpus;
  }
  const log = createLogger({ name: 'worker', ...(opts.logFormat ? { format: opts.logFormat } : {}) });
  const connection = createRedis();
  connection.on('error', (e) => log.error({ reason: e.message }, `redis: ${e.message}`));
  const lock = lockDurationMs();
  const powerRetry = powerRetryMs();
  const worker = new FarmWorker({
    connection,
    pool: opts.pool,
    backend: opts.backend,
    // A CPU-backend worker may still own a GPU (--gpu): its environment is then controlled and recorded.
    gpu: opts.gpu ?? (opts.backend === 'cuda' ? 0 : null),
    ...(gpus ? { gpus } : {}),
    allowClockControl: opts.allowClockControl ?? false,
    allowPowerControl: opts.allowPowerControl ?? false,
    telemetry: opts.telemetry !== false,
    ...(powerRetry !== undefined ? { powerRetryMs: powerRetry } : {}),
    arch: opts.arch,
    csrc: csrcDir(),
    cache: cacheDir(),
    stateDir: stateDir(),
    ...(opts.name ? { name: opts.name } : {}),
    testHooks: opts.testHooks ?? false,
    ...(lock ? { lockDurationMs: lock } : {}),
    log,
  });
  let identity;
  try {
    identity = await worker.start();
  } catch (err) {
    // A refused start (a GPU another worker owns): let go of what was opened, so the process can exit with the error.
    await worker.close(true).catch(() => undefined);
    connection.disconnect();
    throw err;
  }
  const caps = worker.capabilities;
  const topo = worker.topology;
  const several = gpus && gpus.length > 1 ? `${gpus.length} GPUs ${gpus.join(',')}${topo ? ` (${topo.summary})` : ''}, jobs of 1-${gpus.length} GPUs` : null;
  log.info(
    { event: 'start', worker: identity.id, pool: opts.pool, backend: opts.backend, gpu: caps?.name ?? null, gpus: gpus ?? null },
    `${identity.id}: serving pool ${opts.pool} (${opts.backend}${caps?.name ? `, ${caps.name}` : ''}${several ? `; ${several}` : ''}), pid ${process.pid}` +
      (caps ? `; clock control: ${caps.clockControl.allowed ? 'allowed' : caps.clockControl.reason}; power control: ${caps.powerControl.allowed ? 'allowed' : caps.powerControl.reason}` : ''),
  );
  const stop = onShutdown(
    () => worker.close(false),
    () => {
      void worker.abortAndRestore().finally(() => process.exit(130));
    },
  );
  if (opts.once) {
    await Promise.race([stop, worker.drained()]);
    await worker.close(false);
  } else {
    await stop;
  }
  connection.disconnect();
  log.info({ event: 'stop', worker: identity.id, jobs: worker.processed }, `${identity.id}: stopped after ${worker.processed} job(s)`);
}
