/**
 * `moefarm results export --sweep ID --csv`: every raw timing sample of a
 * sweep, one row per sample, with the conditions of its run (build, variant,
 * shape, tokens, dtype, clock and power asked for and observed, GPU, worker,
 * round, rep), so that any statistic can be recomputed elsewhere. The SM
 * clock by its three names: requested_sm_mhz (what the worker asked the
 * driver to lock; empty at default clocks), telemetry_sm_mhz (nvidia-smi's
 * median over the run's timed window), sm_clock_mhz (the kernel's own
 * reading of that sample). Runs are read a page at a time and written as they
 * come: a sweep of a million samples never sits in memory whole.
 */
import { tuneText } from '../sweep/tune.js';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Db } from '../db/client.js';
import { readSamples } from '../db/samples.js';
import { UsageError } from '../errors.js';
import { settingText, runEnvironment } from '../results/environment.js';
import { parseRunEnv, RunParamsSchema } from '../schema/job.js';
import { csvLines, type Cell } from '../util/table.js';
import { withDb } from './context.js';

export interface ResultsExportOptions {
  sweep: string;
  csv?: boolean;
  json?: boolean;
  output?: string;
}

export const EXPORT_COLUMNS = [
  'sweep', 'label', 'run', 'rep', 'build', 'source_hash', 'git_commit', 'variant', 'tune', 'backend', 'model', 'hidden', 'inter', 'experts', 'topk',
  'tokens', 'dtype', 'warmup', 'iters', 'clock', 'power', 'gpu', 'requested_sm_mhz', 'power_limit_w', 'telemetry_sm_mhz', 'worker', 'flags',
  'round', 'sample', 'latency_us', 'sm_clock_mhz',
] as const;

const PAGE = 100;

export async function resultsExport(opts: ResultsExportOptions): Promise<void> {
  const toFile = opts.output !== undefined && opts.output !== '-';
  let out: Writable = process.stdout;
  // The file is created only once the sweep is known: a mistyped id leaves no empty file behind.
  const open = (): Writable => (out = toFile ? createWriteStream(opts.output!) : process.stdout);
  const rows = await withDb((db) => exportSamples(db, opts.sweep, open, opts.json ? 'json' : 'csv'), { mustExist: true });
  if (toFile) {
    out.end();
    await once(out, 'finish');
    process.stderr.write(`wrote ${rows} sample(s) of sweep ${opts.sweep} to ${opts.output}\n`);
  }
}

/** Writes every sample of the sweep's done runs; returns how many (-1: the reader went away first). */
export async function exportSamples(db: Db, sweepId: string, open: () => Writable, format: 'csv' | 'json'): Promise<number> {
  const sweep = await db.sweep.findUnique({ where: { id: sweepId }, select: { label: true } });
  if (!sweep) throw new UsageError(`sweep ${sweepId}: no such sweep in the database (moefarm sweep list shows them)`);
  const out = open();
  // A reader that stops early (`| head`) closes the pipe: the export ends there, quietly, like any Unix tool.
  let closed = false;
  let failure: Error | null = null;
  const onError = (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') closed = true;
    else failure = e;
  };
  out.on('error', onError);
  const write = async (text: string) => {
    if (failure) throw failure;
    if (closed) throw new ReaderGone();
    if (!out.write(text)) await Promise.race([once(out, 'drain'), once(out, 'error')]);
  };
  try {
    return await writeAll(db, sweepId, sweep.label, write, format);
  } catch (err) {
    if (err instanceof ReaderGone || closed) return -1;
    throw err;
  } finally {
    out.off('error', onError);
  }
}

class ReaderGone extends Error {}

async function writeAll(db: Db, sweepId: string, label: string | null, write: (text: string) => Promise<void>, format: 'csv' | 'json'): Promise<number> {
  if (format === 'csv') await write(csvLines([[...EXPORT_COLUMNS]]) + '\n');
  let count = 0;
  let cursor: string | undefined;
  for (;;) {
    const runs = await db.run.findMany({
      where: { sweepId, status: 'done' },
      include: { results: { orderBy: [{ build: 'asc' }, { variant: 'asc' }] } },
      orderBy: { id: 'asc' },
      take: PAGE,
      ...(cursor !== undefined ? { skip: 1, cursor: { id: cursor } } : {}),
    });
    if (runs.length === 0) break;
    cursor = runs.at(-1)!.id;
    const workers = new Map(
      (await db.worker.findMany({ where: { id: { in: [...new Set(runs.map((r) => r.workerId).filter((w): w is string => w !== null))] } }, select: { id: true, gpu: true } })).map((w) => [w.id, w.gpu]),
    );
    const lines: Cell[][] = [];
    for (const run of runs) {
      const params = RunParamsSchema.parse(JSON.parse(run.params));
      const env = parseRunEnv(run.env);
      for (const res of run.results) {
        const p = params.find((x) => x.point.variant === res.variant && x.build === res.build && tuneText(x.point.tune) === res.tune)?.point ?? params[0]!.point;
        const { gpu, telemetrySmMhz } = runEnvironment({ point: p, envJson: run.env, telemetryJson: run.telemetry, workerGpu: run.workerId ? (workers.get(run.workerId) ?? null) : null, smClockBandMhz: 0 });
        const { samples, rounds, smClockMhz } = readSamples(res);
        const fixed: Cell[] = [
          sweepId, label, run.id, run.rep, res.build, res.sourceHash, res.gitCommit, res.variant, res.tune, p.backend, p.model, p.hidden, p.inter, p.experts, p.topk,
          p.tokens, p.dtype, p.warmup, p.iters, settingText(p.clock), settingText(p.power), gpu,
          env?.requestedSmMhz ?? null, env?.powerLimitW ?? null, telemetrySmMhz, run.workerId, run.flags,
        ];
        samples.forEach((us, i) => lines.push([...fixed, rounds[i] ?? null, i, us, smClockMhz?.[i] ?? null]));
      }
    }
    count += lines.length;
    if (format === 'csv') {
      // Full precision: a CSV is for recomputing, not for eyes.
      if (lines.length) await write(csvLines(lines.map((l) => l.map((c) => (typeof c === 'number' ? String(c) : c)))) + '\n');
    } else {
      await write(lines.map((l) => JSON.stringify(Object.fromEntries(EXPORT_COLUMNS.map((c, i) => [c, l[i] ?? null])))).join('\n') + (lines.length ? '\n' : ''));
    }
    if (runs.length < PAGE) break;
  }
  return count;
}
