#!/usr/bin/env node
/**
 * The moefarm command line. This file only declares commands; each handler
 * lives in commands/ and is imported when its command runs. Handlers throw
 * typed errors; only this file turns them into messages and exit codes.
 */
import { Command, CommanderError, Option } from 'commander';
import { commanderExitCode, EXIT_CODES_HELP, gpuList, label, listenPort, needs, needsOneOf, nonNegativeInt, percent, pointInTime, positiveInt, webhookUrl } from './cli-args.js';
import { exitCodeOf, UsageError } from './errors.js';
import type { WorkerCommandOptions as WorkerCliOptions } from './commands/worker.js';
import { redactText } from './util/redact.js';
import { forTerminal } from './util/terminal.js';

const program = new Command();
program
  .name('moefarm')
  .description('Benchmark farm for single-kernel Mixture-of-Experts GPU operators')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  // Commander's errors are thrown, not exited on, so that the end of this file maps them to exit code 2.
  // Set before any command is added: subcommands inherit both settings.
  .exitOverride();

const sweep = program.command('sweep').description('submit sweeps and follow their progress');
sweep
  .command('submit')
  .description('validate a sweep file, record its plan and enqueue one job per run')
  .argument('<file>', 'sweep file (YAML)')
  .addOption(new Option('--dry-run', 'validate and expand only: print the number of jobs and the sweep id, enqueue nothing').conflicts('untilConfident'))
  .option('--allow-large', 'allow a sweep that expands past the run limit')
  .option('--json', 'print the report as JSON')
  .option('--until-confident', 'then wait for outcomes and repeat the runs of UNSURE comparisons until decided (needs a collector: moefarm serve)')
  .option('--budget <n>', 'with --until-confident: at most this many extra runs (default: the sweep\'s run count)', positiveInt)
  .option('--source <dir>', 'the kernel source to measure, for a sweep without builds: (default: this checkout\'s csrc/ as it is on disk)')
  .option('--label <label>', 'store this label with the sweep (sweep list --label, results compare --label find it); replaces an earlier one', label)
  .addOption(new Option('--retry [outcomes]', 'also run again the runs of this sweep that ended with these outcomes (comma list; alone: every outcome but done)').conflicts('dryRun'))
  .action(async (file: string, opts: { dryRun?: boolean; allowLarge?: boolean; json?: boolean; untilConfident?: boolean; budget?: number; source?: string; label?: string; retry?: string | true }, cmd: Command) => {
    needs(cmd, 'budget', opts.untilConfident === true, '--until-confident');
    const { sweepSubmit } = await import('./commands/sweep-submit.js');
    await sweepSubmit(file, opts);
  });
sweep
  .command('list')
  .description('recorded sweeps, newest first: id, name, label, pool, when, runs done / failed / cancelled / queued')
  .option('--label <label>', 'only sweeps with this label', label)
  .option('--since <when>', 'only sweeps submitted at or after: a date (2026-11-27), date and time (UTC unless a zone is given) or an age (7d, 12h)', (v: string) => pointInTime(v))
  .option('--until <when>', 'only sweeps submitted before (same forms as --since)', (v: string) => pointInTime(v))
  .option('--limit <n>', 'at most this many sweeps', positiveInt, 50)
  .option('--json', 'print as JSON')
  .action(async (opts: { label?: string; since?: Date; until?: Date; limit: number; json?: boolean }) => {
    const { sweepList } = await import('./commands/sweep-list.js');
    await sweepList(opts);
  });
sweep
  .command('cancel')
  .description('cancel a sweep: its waiting jobs leave the queue, running ones are stopped, its unfinished runs end as cancelled')
  .argument('<id>', 'sweep id')
  .option('--json', 'print as JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const { sweepCancel } = await import('./commands/sweep-cancel.js');
    await sweepCancel(id, opts);
  });
sweep
  .command('retry')
  .description('run again the runs of a sweep that ended with these outcomes (same run ids; earlier outcomes kept)')
  .argument('<id>', 'sweep id')
  .option('--status <outcomes>', 'comma list of outcomes to retry (default: every outcome but done), e.g. crashed,timeout')
  .option('--json', 'print as JSON')
  .action(async (id: string, opts: { status?: string; json?: boolean }) => {
    const { sweepRetry } = await import('./commands/sweep-retry.js');
    await sweepRetry(id, opts);
  });
sweep
  .command('resume')
  .description('enqueue every run the database holds as unfinished, whatever Redis remembers (after Redis lost its state, or the database was replaced)')
  .argument('<id>', 'sweep id')
  .option('--json', 'print as JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const { sweepResume } = await import('./commands/sweep-resume.js');
    await sweepResume(id, opts);
  });
sweep
  .command('status')
  .description('progress of a sweep: done / running / failed / waiting per pool')
  .argument('<id>', 'sweep id')
  .option('--watch', 'refresh until the sweep is finished')
  .option('--json', 'print as JSON')
  .action(async (id: string, opts: { watch?: boolean; json?: boolean }) => {
    const { sweepStatus } = await import('./commands/sweep-status.js');
    await sweepStatus(id, opts);
  });

program
  .command('worker')
  .description('run jobs of one pool on this machine (one worker per GPU, or one for several GPUs with --gpus)')
  .option('--pool <pool>', 'pool (queue) to serve', 'default')
  .addOption(new Option('--backend <backend>', 'native backend').choices(['cpu', 'cuda']).default('cpu'))
  .option('--gpu <n>', 'GPU index: the GPU this worker owns, controls and records (default 0 with --backend cuda)', nonNegativeInt)
  .option('--gpus <list>', "GPUs this worker owns: indices (0,1,2,3) or 'all' (nvidia-smi -L); it then also takes jobs of up to that many GPUs (sweep axis gpus)", gpuList)
  .addOption(new Option('--arch <arch>', 'CUDA target (cuda backend)').choices(['sm_90a', 'sm_89', 'sm_80']).default('sm_90a'))
  .option('--name <name>', 'worker name (default host/pool/device)')
  .option('--once', 'exit when the queue is empty')
  .option('--allow-clock-control', 'may lock GPU clocks (nvidia-smi -lgc/-rgc) for points that ask; needs root')
  .option('--allow-power-control', 'may set the GPU power limit (nvidia-smi -pl) for points that ask; needs root')
  .option('--no-telemetry', 'do not sample GPU telemetry during runs')
  .addOption(logFormatOption())
  .addOption(new Option('--test-hooks', 'honour TEST ONLY hooks in jobs').hideHelp())
  .action(async (opts: WorkerCliOptions, cmd: Command) => {
    if (opts.gpu !== undefined && opts.gpus !== undefined) throw new UsageError('moefarm worker: --gpu and --gpus: give one (--gpu N is --gpus N)');
    const ownsGpu = opts.backend === 'cuda' || opts.gpu !== undefined || opts.gpus !== undefined;
    needs(cmd, 'arch', opts.backend === 'cuda', '--backend cuda (the CPU build has no CUDA target)');
    for (const o of ['allowClockControl', 'allowPowerControl', 'telemetry']) needs(cmd, o, ownsGpu, 'a GPU (--gpu N, --gpus LIST or --backend cuda)');
    const { workerCommand } = await import('./commands/worker.js');
    await workerCommand(opts);
  });

program
  .command('workers')
  .description('live workers and what they can do (GPU, clocks, power, permissions); silent ones marked')
  .option('--json', 'print as JSON')
  .action(async (opts: { json?: boolean }) => {
    const { workersCommand } = await import('./commands/workers.js');
    await workersCommand(opts);
  });

program
  .command('serve')
  .description('run the collector: write results from the queue into the database; with --http, also serve reports')
  .option('--http <port>', 'also serve the sweeps\' HTML reports on this port (0: any free port)', listenPort)
  .option('--host <address>', 'with --http: address the HTTP server binds (default 127.0.0.1)')
  .option('--notify <url>', 'POST a JSON message to this webhook when a sweep confirms a regression (retried with backoff; the URL is never logged)', webhookUrl)
  .option('--notify-digest', 'with --notify: one message per finished sweep that has regressions, instead of one per regression')
  .addOption(logFormatOption())
  .action(async (opts: { http?: number; host?: string; notify?: string; notifyDigest?: boolean; logFormat?: 'json' | 'pretty' }, cmd: Command) => {
    needs(cmd, 'host', opts.http !== undefined, '--http PORT');
    needs(cmd, 'notifyDigest', opts.notify !== undefined, '--notify URL');
    const { serve } = await import('./commands/serve.js');
    await serve(opts);
  });

const results = program.command('results').description('query stored results');
results
  .command('list')
  .description('list runs and their results')
  .option('--sweep <id>', 'only this sweep')
  .option('--variant <name>', 'only this variant')
  .option('--status <status>', 'only runs with this status (done, failed, timeout, …)')
  .option('--limit <n>', 'at most this many rows', positiveInt, 50)
  .option('--json', 'print as JSON')
  .action(async (opts: { sweep?: string; variant?: string; status?: string; limit: number; json?: boolean }) => {
    const { resultsList } = await import('./commands/results-list.js');
    await resultsList(opts);
  });
results
  .command('export')
  .description('every raw timing sample of a sweep, one row per sample, with its run\'s conditions (build, variant, shape, tokens, dtype, clock, power, gpu, round, rep)')
  .requiredOption('--sweep <id>', 'sweep id')
  .option('--csv', 'CSV with a header row (the default)')
  .addOption(new Option('--json', 'JSON lines: one object per sample').conflicts('csv'))
  .option('-o, --output <file>', 'write to this file (default: stdout)')
  .action(async (opts: { sweep: string; csv?: boolean; json?: boolean; output?: string }) => {
    const { resultsExport } = await import('./commands/results-export.js');
    await resultsExport(opts);
  });
results
  .command('compare')
  .description('compare variants against a baseline per point and environment: medians, speedup with 95% CI, test, verdict; or two sweeps (or labels) point by point')
  .addOption(new Option('--sweep <id>', 'sweep id').conflicts('label'))
  .option('--label <label>', 'instead of --sweep: the sweeps with this label, pooled', label)
  .option('--against <id>', 'with --sweep: compare each point and variant with the same in this sweep (the baseline)')
  .option('--against-label <label>', 'with --label: compare with the sweeps that have this label (the baseline)', label)
  .addOption(new Option('--baseline <spec>', 'baseline, as variant=NAME or build=NAME (default: the sweep file\'s baseline)').conflicts(['against', 'againstLabel']))
  .option('--by-condition', 'one row per condition (gpu, clock, power) and variant: baseline ms, variant ms, speedup [CI]')
  .option('--include-flagged', 'include runs flagged throttled or clock-mismatch (left out by default)')
  .option('--clock-band <mhz>', 'group runs by observed SM clock in bands this wide (0: do not)', nonNegativeInt)
  .option('--energy', 'show the energy columns (mJ per forward, mean W; "-" where none was measured) even when no result has energy')
  .addOption(new Option('--json', 'print as JSON').conflicts(['csv', 'byCondition']))
  .option('--csv', 'print as CSV')
  .action(async (opts: { sweep?: string; label?: string; against?: string; againstLabel?: string; baseline?: string; json?: boolean; csv?: boolean; byCondition?: boolean; includeFlagged?: boolean; clockBand?: number; energy?: boolean }, cmd: Command) => {
    needsOneOf(cmd, ['sweep', 'label']);
    needs(cmd, 'against', opts.sweep !== undefined, '--sweep ID (--against-label goes with --label)');
    needs(cmd, 'againstLabel', opts.label !== undefined, '--label L (--against goes with --sweep)');
    const { resultsCompare } = await import('./commands/results-compare.js');
    await resultsCompare(opts);
  });
results
  .command('history')
  .description('a point across builds (source hash / git commit), with regressions and improvements flagged')
  .requiredOption('--point <hash>', 'point hash (Result.pointHash or a run\'s group hash; a prefix of 6+ characters will do)')
  .option('--variant <name>', 'only this variant')
  .option('--include-flagged', 'include runs flagged throttled or clock-mismatch')
  .addOption(new Option('--json', 'print as JSON').conflicts('csv'))
  .option('--csv', 'print as CSV')
  .action(async (opts: { point: string; variant?: string; includeFlagged?: boolean; json?: boolean; csv?: boolean }) => {
    const { resultsHistory } = await import('./commands/results-history.js');
    await resultsHistory(opts);
  });

results
  .command('annotate')
  .description('mark a history step (a build at one point) as expected or invalid, with a note: history, the report, the check and alerts honour it')
  .requiredOption('--build <build>', 'the build the step goes into: its source hash or git commit (6+ characters), or a git ref of the repository here')
  .requiredOption('--point <hash>', 'the point with its variant (Result.pointHash, as results history shows it; 6+ characters)')
  .addOption(new Option('--as <kind>', 'expected: a real, intended change (the step stays, marked); invalid: measurements not to be trusted (left out)').choices(['expected', 'invalid']).conflicts('clear'))
  .option('--note <text>', 'why (required with --as)')
  .addOption(new Option('--clear', 'remove the annotation of this step').conflicts('note'))
  .option('--json', 'print as JSON')
  .action(async (opts: { build: string; point: string; as?: 'expected' | 'invalid'; note?: string; clear?: boolean; json?: boolean }, cmd: Command) => {
    needsOneOf(cmd, ['as', 'clear']);
    const { resultsAnnotate } = await import('./commands/results-annotate.js');
    await resultsAnnotate(opts);
  });

program
  .command('check')
  .description('the regression gate for CI: exit 1 when a comparison of the sweep is a confirmed SLOWER beyond the threshold, else 0; optionally a markdown summary')
  .requiredOption('--sweep <id>', 'sweep id')
  .option('--threshold <pct>', 'fail on SLOWER only when the latency grew by more than this many percent', percent, 5)
  .addOption(new Option('--unsure <policy>', 'what an UNSURE comparison (or runs still waiting) does to the check').choices(['pass', 'fail']).default('pass'))
  .option('--markdown <file>', 'write a markdown summary (table, speedups with intervals, verdicts, environment, report) for a CI step or a pull-request comment; - for stdout')
  .option('--report <file>', 'also write the sweep\'s HTML report to this file, and name it in the summary')
  .option('--report-url <url>', 'where the HTML report can be read (a CI artifact, moefarm serve --http): named in the summary')
  .option('--baseline <spec>', 'baseline, as variant=NAME or build=NAME (default: the sweep file\'s baseline)')
  .option('--json', 'print the outcome as JSON')
  .action(async (opts: { sweep: string; threshold: number; unsure: 'pass' | 'fail'; markdown?: string; report?: string; reportUrl?: string; baseline?: string; json?: boolean }) => {
    if (opts.json && opts.markdown === '-') throw new UsageError("moefarm check: --json cannot be used with --markdown - (both write to stdout)");
    const { check } = await import('./commands/check.js');
    await check(opts);
  });

program
  .command('bisect')
  .description('find the first commit that made a sweep slower: a paired sweep of each commit against the good one, halving the range as git bisect does; resumes where it stopped')
  .requiredOption('--good <ref>', 'a commit (any git ref) known to be fast')
  .requiredOption('--bad <ref>', 'a later commit known to be slow (good must be its ancestor)')
  .requiredOption('--sweep <file>', 'sweep file: the points to measure (its builds: and baseline are set by bisect: good against each commit, interleaved)')
  .option('--point <hash>', 'only this point decides (Result.pointHash or a run group hash, 6+ characters); the sweep runs only it')
  .option('--source <dir>', 'the kernel source folder in the repository (default: this checkout\'s csrc/)')
  .option('--threshold <pct>', 'a commit is slow when SLOWER than good by more than this many percent', percent, 5)
  .addOption(new Option('--unsure <policy>', 'a commit still UNSURE after --until-confident: counted good (not shown slower) or skipped as a commit that cannot be tested').choices(['good', 'skip']).default('good'))
  .option('--budget <n>', 'extra runs per step for undecided comparisons (default: the sweep\'s run count)', nonNegativeInt)
  .option('--local', 'run the sweeps on this machine: a collector and a worker in this process, as moefarm demo does (default: submit to the running farm at REDIS_URL and wait)')
  .option('--restart', 'forget the steps recorded for this bisect and begin again')
  .option('--json', 'print the outcome as JSON')
  .action(async (opts: { good: string; bad: string; sweep: string; point?: string; source?: string; threshold: number; unsure: 'good' | 'skip'; budget?: number; local?: boolean; restart?: boolean; json?: boolean }) => {
    const { bisect } = await import('./commands/bisect.js');
    await bisect(opts);
  });

program
  .command('report')
  .description('write one self-contained HTML report of a sweep: distributions, speedups, telemetry, history')
  .requiredOption('--sweep <id>', 'sweep id')
  .option('-o, --output <file>', 'output file (- for stdout)', undefined)
  .option('--baseline <spec>', 'baseline, as variant=NAME or build=NAME (default: the sweep file\'s baseline)')
  .option('--include-flagged', 'include runs flagged throttled or clock-mismatch')
  .option('--telemetry-runs <ids>', 'comma list of run ids whose telemetry to draw (default: up to 4 runs that have it)')
  .option('--clock-band <mhz>', 'group runs by observed SM clock in bands this wide (0: do not)', nonNegativeInt)
  .action(async (opts: { sweep: string; output?: string; baseline?: string; includeFlagged?: boolean; telemetryRuns?: string; clockBand?: number }) => {
    const { reportCommand } = await import('./commands/report.js');
    await reportCommand(opts);
  });

program
  .command('tune')
  .description('the farm as autotuner: run a sweep over tunable settings (matrix.tune) or read a finished one, pick per GPU model, shape, tokens, dtype and variant the setting that beats the runner-up with a FASTER verdict (ties reported, nothing written for them), optionally write the winners into a tuning table the binary uses by default')
  .requiredOption('--sweep <file|id>', 'a sweep file with matrix.tune (submitted, then waited for: needs a collector and workers) or the id of a sweep already run')
  .option('--out <file>', 'tuning table to write the winners into, e.g. csrc/tuning/h100-sxm.json (entries of other keys stay; created if missing)')
  .option('--include-flagged', 'include runs flagged throttled or clock-mismatch (left out by default)')
  .option('--source <dir>', 'with a sweep file without builds: the kernel source to measure (default: this checkout\'s csrc/)')
  .option('--allow-large', 'allow a sweep that expands past the run limit')
  .option('--label <label>', 'store this label with the sweep', label)
  .option('--json', 'print the decisions (and the table written) as JSON')
  .action(async (opts: { sweep: string; out?: string; includeFlagged?: boolean; source?: string; allowLarge?: boolean; label?: string; json?: boolean }) => {
    const { tuneCommand } = await import('./commands/tune.js');
    await tuneCommand(opts);
  });

program
  .command('demo')
  .description('run the demo sweep end to end on this machine (local worker and collector)')
  .option('--sweep <file>', 'sweep file to run instead of sweeps/demo.yaml')
  .action(async (opts: { sweep?: string }) => {
    const { demo } = await import('./commands/demo.js');
    await demo(opts);
  });

const db = program.command('db').description('database maintenance');
db.command('migrate')
  .description('create or upgrade the tables in DATABASE_URL')
  .action(async () => {
    const { dbMigrate } = await import('./commands/db-migrate.js');
    await dbMigrate();
  });
db.command('prune')
  .description('delete sweeps with their runs and results: those submitted before a date, with a label, or one by id (sweeps with unfinished runs are kept)')
  .option('--before <when>', 'sweeps submitted before: a date (2026-11-27), date and time (UTC unless a zone is given) or an age (30d)', (v: string) => pointInTime(v))
  .option('--sweep <id>', 'this sweep')
  .option('--label <label>', 'sweeps with this label', label)
  .option('--dry-run', 'say what would be deleted, delete nothing')
  .option('--json', 'print as JSON')
  .action(async (opts: { before?: Date; sweep?: string; label?: string; dryRun?: boolean; json?: boolean }, cmd: Command) => {
    needsOneOf(cmd, ['before', 'sweep', 'label'], 'a bare prune would delete every sweep');
    const { dbPrune } = await import('./commands/db-prune.js');
    await dbPrune(opts);
  });

/** --log-format of the long-running commands; MOEFARM_LOG_FORMAT sets it too. */
function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log lines human-readable (pretty, one line per event) or as JSON lines').choices(['pretty', 'json']).env('MOEFARM_LOG_FORMAT');
}

/** Every command's --help ends with the exit codes, also those of commands added later. */
function withExitCodes(cmd: Command): void {
  cmd.addHelpText('after', `\n${EXIT_CODES_HELP}`);
  cmd.commands.forEach(withExitCodes);
}
withExitCodes(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (and, for an error, the hint to run --help).
    process.exitCode = commanderExitCode(err);
  } else {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`moefarm: ${forTerminal(redactText(message))}\n`);
    process.exitCode = exitCodeOf(err);
  }
}
