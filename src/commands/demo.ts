/**
 * The main job on embedded defaults: a collector and a worker in this
 * process, the demo sweep submitted, progress shown, the comparison printed.
 * Uses the CUDA backend when this machine has a GPU and nvcc, else the CPU one.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { databaseUrl, projectRoot, redisUrl } from '../config.js';
import { submitPlan } from '../queue/submit.js';
import { compareSweep } from '../results/compare.js';
import { loadSweepResults } from '../results/load.js';
import { renderProgress, sweepProgress } from '../results/progress.js';
import { planSweep } from '../sweep/expand.js';
import { loadSweepFile } from '../sweep/load.js';
import { redisOrPrivate } from '../services/redis-server.js';
import { redactUrl } from '../util/redact.js';
import { withLocalFarm } from './local-farm.js';
import { formatComparison } from './results-compare.js';

async function hasGpu(): Promise<boolean> {
  const smi = await execa('nvidia-smi', ['-L'], { reject: false });
  if (smi.failed || smi.exitCode !== 0 || !/GPU \d/.test(smi.stdout)) return false;
  const nvcc = await execa('nvcc', ['--version'], { reject: false });
  return !nvcc.failed && nvcc.exitCode === 0;
}

export async function demo(opts: { sweep?: string }): Promise<void> {
  const gpu = await hasGpu();
  const file = opts.sweep ?? join(projectRoot, 'sweeps', gpu ? 'demo-cuda.yaml' : 'demo.yaml');
  const sweep = await loadSweepFile(file);
  const plan = planSweep(sweep, { file });
  const out = (s: string) => process.stdout.write(s + '\n');
  // A machine with nothing running still runs the demo: when no server listens at REDIS_URL, a private
  // redis-server of this process's own (stopped when the demo ends, however it ends).
  const queue = await redisOrPrivate(redisUrl());
  if (queue.private) out(`moefarm demo: no Redis at ${redactUrl(redisUrl())}: started a private redis-server at ${queue.url} for this demo (it stops when the demo ends)`);
  try {
    await runDemo(gpu, file, sweep, plan, queue.url, out);
  } finally {
    await queue.private?.stop();
  }
}

async function runDemo(
  gpu: boolean,
  file: string,
  sweep: Awaited<ReturnType<typeof loadSweepFile>>,
  plan: ReturnType<typeof planSweep>,
  url: string,
  out: (s: string) => void,
): Promise<void> {
  out(`moefarm demo: ${gpu ? 'GPU found: CUDA backend' : 'no GPU: CPU backend'}; results in ${redactUrl(databaseUrl())}`);
  await withLocalFarm({ url, pool: sweep.pool, backend: gpu ? 'cuda' : 'cpu' }, async (db, redis) => {
    out(`building the native binary (cached after the first time) and running ${plan.runs.length} jobs…`);
    const report = await submitPlan(db, redis, plan, file);
    out(`sweep ${report.sweepId} (${sweep.name}): ${report.points} points, ${report.runs} jobs; enqueued ${report.enqueued}, already done ${report.alreadyDone}`);
    const tty = process.stdout.isTTY;
    let lines = 0;
    for (;;) {
      const p = await sweepProgress(db, redis, report.sweepId);
      const text = renderProgress(p);
      if (tty) {
        if (lines) process.stdout.write(`\x1b[${lines}A\x1b[J`);
        process.stdout.write(text + '\n');
        lines = text.split('\n').length;
      }
      if (p.finished) {
        if (!tty) out(text);
        break;
      }
      await sleep(tty ? 300 : 1000);
    }
    const cmp = compareSweep(await loadSweepResults(db, report.sweepId), null);
    out('');
    out(formatComparison(cmp));
    out('');
    out(`next: moefarm results compare --sweep ${report.sweepId}   |   moefarm results list --sweep ${report.sweepId}`);
  });
}
