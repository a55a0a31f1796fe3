import { cacheDir, csrcDir } from '../config.js';
import { assertRedisReachable, createRedis } from '../queue/connection.js';
import { FarmWorker } from '../../worker/worker.js';
import { onShutdown } from './context.js';

export interface WorkerCommandOptions {
  pool: string;
  backend: 'cpu' | 'cuda';
  gpu?: number;
  arch: string;
  name?: string;
  once?: boolean;
  testHooks?: boolean;
}

export async function workerCommand(opts: WorkerCommandOptions): Promise<void> {
  await assertRedisReachable();
  const connection = createRedis();
  connection.on('error', (e) => process.stderr.write(`worker: redis: ${e.message}\n`));
  const lock = process.env['MOEFARM_LOCK_MS'] ? Number(process.env['MOEFARM_LOCK_MS']) : undefined;
  const worker = new FarmWorker({
    connection,
    pool: opts.pool,
    backend: opts.backend,
    gpu: opts.backend === 'cuda' ? (opts.gpu ?? 0) : null,
    arch: opts.arch,
    csrc: csrcDir(),
    cache: cacheDir(),
    ...(opts.name ? { name: opts.name } : {}),
    testHooks: opts.testHooks ?? false,
    ...(lock ? { lockDurationMs: lock } : {}),
  });
  const identity = await worker.start();
  process.stderr.write(`worker ${identity.id}: serving pool ${opts.pool} (${opts.backend}${identity.gpu ? `, ${identity.gpu}` : ''}), pid ${process.pid}\n`);
  const stop = onShutdown(
    () => worker.close(false),
    () => {
      void worker.close(true);
      process.exit(130);
    },
  );
  if (opts.once) {
    await Promise.race([stop, worker.drained()]);
    await worker.close(false);
  } else {
    await stop;
  }
  connection.disconnect();
  process.stderr.write(`worker ${identity.id}: stopped after ${worker.processed} job(s)\n`);
}
