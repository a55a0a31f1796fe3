/**
 * `moefarm tune --sweep FILE|ID [--out csrc/tuning/NAME.json]`: runs a sweep
 * over tunable settings (matrix.tune) through the farm, or reads one that has
 * finished, and picks per GPU model, shape, tokens, dtype and variant (GPUs,
 * shared experts and fp8 scales too, where not at their defaults) the
 * setting that beats the runner-up with a FASTER verdict (results/tune.ts);
 * ties are reported and change nothing. With --out the winners are written
 * into that tuning table (entries of other keys stay), which the binary
 * embeds at its next build and uses by default.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../errors.js';
import { parseTuningTable, parseVariantTable, TuningTableSchema, type TuningTable } from '../schema/variant-table.js';
import { assertTuned, decideTuning, describeKey, formatTuningTable, updateTuningTable, type TuneReport } from '../results/tune.js';
import { renderTable, type Cell } from '../util/table.js';

export interface TuneCommandOptions {
  /** A sweep file (submitted, then waited for) or the id of a sweep already run. */
  sweep: string;
  /** The tuning table to write the winners into (read first when it exists). */
  out?: string;
  json?: boolean;
  includeFlagged?: boolean;
  /** File mode: the source folder of a sweep without builds: (default: this checkout's csrc/). */
  source?: string;
  allowLarge?: boolean;
  label?: string;
}

const SWEEP_ID = /^s[0-9a-f]{12}$/;

export async function tuneCommand(opts: TuneCommandOptions): Promise<void> {
  const byId = SWEEP_ID.test(opts.sweep) && !existsSync(opts.sweep);
  const existing = opts.out !== undefined ? readTable(opts.out) : null;
  const { withDb } = await import('./context.js');
  const { loadSweepResults } = await import('../results/load.js');
  let report: TuneReport;
  if (byId) {
    report = await withDb(async (db) => decideTuning(await loadSweepResults(db, opts.sweep), { includeFlagged: opts.includeFlagged ?? false }));
    if (report.queued > 0) process.stderr.write(`tune: sweep ${opts.sweep}: ${report.queued} run(s) still wait for an outcome; deciding on what has finished\n`);
  } else {
    report = await runAndDecide(opts);
  }
  assertTuned(report);
  const update = opts.out !== undefined ? updateTuningTable(existing, report) : null;
  if (update && opts.out !== undefined) writeAtomically(opts.out, formatTuningTable(update.table));
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...report, ...(update ? { out: opts.out, written: update.written, kept: update.kept, table: update.table } : {}) }, null, 2) + '\n');
    return;
  }
  process.stdout.write(formatTune(report) + '\n');
  if (update) {
    process.stdout.write(
      `${opts.out}: ${update.written.length} entr${update.written.length === 1 ? 'y' : 'ies'} written` +
        (update.written.length ? ` (${update.written.join('; ')})` : '') +
        (update.kept.length ? `; left as they were (tie or one setting): ${update.kept.join('; ')}` : '') +
        `; ${update.table.entries.length} in the file. The binary uses them from its next build (make -C csrc; a sweep's source carries csrc/tuning/).\n`,
    );
  } else {
    const winners = report.decisions.filter((d) => d.outcome === 'winner').length;
    process.stdout.write(`${winners} winner(s); --out csrc/tuning/FILE.json writes them into a tuning table\n`);
  }
}

/** File mode: submit the sweep (a run already done is not run again), wait for every outcome, decide. */
async function runAndDecide(opts: TuneCommandOptions): Promise<TuneReport> {
  const [{ loadSweepFile }, { planSweep }] = await Promise.all([import('../sweep/load.js'), import('../sweep/expand.js')]);
  const sweep = await loadSweepFile(opts.sweep);
  if (!sweep.matrix.tune || Object.keys(sweep.matrix.tune).length === 0) {
    throw new UsageError(`${opts.sweep}: matrix.tune: a tuning sweep lists tunable values per variant, e.g. tune: {persistent-splitk: {slice: [16, 32, 64]}}`);
  }
  if (!sweep.interleave) process.stderr.write(`tune: ${opts.sweep}: interleave is off: settings are compared unpaired, which needs repeat >= 2; interleave: true pairs them by round\n`);
  const plan = planSweep(sweep, { file: opts.sweep, allowLarge: opts.allowLarge ?? false, ...(opts.source !== undefined ? { sourceDir: opts.source } : {}) });
  const [{ submitPlan }, { withDb, withRedis }, { waitForOutcomes }, { loadSweepResults }] = await Promise.all([
    import('../queue/submit.js'),
    import('./context.js'),
    import('../queue/until-confident.js'),
    import('../results/load.js'),
  ]);
  return withRedis((redis) =>
    withDb(async (db) => {
      const r = await submitPlan(db, redis, plan, opts.sweep, opts.label !== undefined ? { label: opts.label } : {});
      process.stderr.write(
        `tune: sweep ${r.sweepId} (${sweep.name}): ${r.points} points, ${r.runs} jobs on pool ${r.pool}; enqueued ${r.enqueued} (${r.alreadyDone} already done); ` +
          `waiting for outcomes (needs a collector, moefarm serve, and workers on pool ${r.pool})\n`,
      );
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      try {
        await waitForOutcomes(db, r.sweepId, { pool: r.pool, log: (l) => process.stderr.write(l.replace(/^until-confident/, 'tune') + '\n'), signal: ac.signal });
      } finally {
        process.off('SIGINT', stop);
      }
      return decideTuning(await loadSweepResults(db, r.sweepId), { includeFlagged: opts.includeFlagged ?? false });
    }),
  );
}

/** The tuning table at `file`, or null when there is none yet; checked against the variant table beside it when there is one. */
function readTable(file: string): TuningTable | null {
  if (!existsSync(file)) return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--out: ${file}: cannot read it (${(err as Error).message})`);
  }
  const variants = join(dirname(file), '..', 'variants.json');
  try {
    if (existsSync(variants)) return parseTuningTable(text, file, parseVariantTable(readFileSync(variants, 'utf8'), variants));
    const parsed = TuningTableSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues[0]!.path.join('.') || '(top level)'}: ${parsed.error.issues[0]!.message}`);
    return parsed.data;
  } catch (err) {
    throw new UsageError(`--out: ${(err as Error).message}; fix or move the file (tune adds its winners to it)`);
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function formatTune(report: TuneReport): string {
  const rows = report.decisions.map((d): Cell[] => {
    const best = d.settings[0]!;
    const second = d.settings[1];
    return [
      describeKey(d),
      ...(new Set(report.decisions.map((x) => x.env)).size > 1 ? [d.env] : []),
      d.best,
      best.medianUs,
      d.runnerUp ?? '-',
      second ? second.medianUs : null,
      d.speedup === null ? null : Number(d.speedup.toFixed(3)),
      d.ciLo === null || d.ciHi === null ? '' : `[${d.ciLo.toFixed(3)}, ${d.ciHi.toFixed(3)}]`,
      d.verdict === null ? '' : d.verdict + (d.mode === 'paired' ? ' (paired)' : ''),
      d.outcome === 'winner' ? `WINNER ${d.best}` : d.outcome === 'tie' ? 'TIE: keep default' : d.outcome === 'single' ? 'one setting' : 'CONFLICT',
    ];
  });
  const envs = new Set(report.decisions.map((x) => x.env));
  const headers = ['key (device variant shape tokens dtype)', ...(envs.size > 1 ? ['env'] : []), 'best', 'best_us', 'runner_up', 'runner_up_us', 'speedup', 'ci95', 'verdict', 'outcome'];
  const lines = [
    `tune: sweep ${report.sweepId} (${report.name}): the fastest setting must beat the runner-up with a FASTER verdict (speedup = runner-up median / best median)` +
      (envs.size === 1 ? `\nenvironment: ${[...envs][0]}` : ''),
    renderTable(headers, rows),
  ];
  for (const d of report.decisions) {
    if (d.outcome !== 'winner') lines.push(`  ${d.outcome.toUpperCase()} ${describeKey(d)}: ${d.reason}`);
    lines.push(`  settings of ${d.variant} (${d.point}): ${d.settings.map((s) => `${s.tune} ${s.medianUs.toPrecision(4)} us${s.joulesPerForward === null ? '' : ` ${(s.joulesPerForward * 1000).toPrecision(4)} mJ`}`).join(', ')}`);
  }
  if (report.untuned.length) lines.push(`not tuned (ran without a setting): ${report.untuned.join(', ')}`);
  lines.push(report.thresholds);
  lines.push('search: exhaustive (every listed setting measured); successive halving is not done');
  const failed = Object.entries(report.failures);
  if (failed.length) lines.push(`runs without a result: ${failed.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}
