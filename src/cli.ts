#!/usr/bin/env node
/**
 * The moefarm command line. This file only declares commands; each handler
 * lives in commands/ and is imported when its command runs. Handlers throw
 * typed errors; only this file turns them into messages and exit codes.
 */
import { Command, CommanderError, Option } from 'commander';
import { commanderExitCode, EXIT_CODES_HELP, listenPort, needs, nonNegativeInt, positiveInt } from './cli-args.js';
import { exitCodeOf } from './errors.js';
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
  .action(async (file: string, opts: { dryRun?: boolean; allowLarge?: boolean; json?: boolean; untilConfident?: boolean; budget?: number; source?: string }, cmd: Command) => {
    needs(cmd, 'budget', opts.untilConfident === true, '--until-confident');
    const { sweepSubmit } = await import('./commands/sweep-submit.js');
    await sweepSubmit(file, opts);
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
  .description('run jobs of one pool on this machine (one worker per GPU)')
  .option('--pool <pool>', 'pool (queue) to serve', 'default')
  .addOption(new Option('--backend <backend>', 'native backend').choices(['cpu', 'cuda']).default('cpu'))
  .option('--gpu <n>', 'GPU index: the GPU this worker owns, controls and records (default 0 with --backend cuda)', nonNegativeInt)
  .addOption(new Option('--arch <arch>', 'CUDA target (cuda backend)').choices(['sm_90a', 'sm_89', 'sm_80']).default('sm_90a'))
  .option('--name <name>', 'worker name (default host/pool/device)')
  .option('--once', 'exit when the queue is empty')
  .option('--allow-clock-control', 'may lock GPU clocks (nvidia-smi -lgc/-rgc) for points that ask; needs root')
  .option('--allow-power-control', 'may set the GPU power limit (nvidia-smi -pl) for points that ask; needs root')
  .option('--no-telemetry', 'do not sample GPU telemetry during runs')
  .addOption(new Option('--test-hooks', 'honour TEST ONLY hooks in jobs').hideHelp())
  .action(async (opts: WorkerCliOptions, cmd: Command) => {
    const ownsGpu = opts.backend === 'cuda' || opts.gpu !== undefined;
    needs(cmd, 'arch', opts.backend === 'cuda', '--backend cuda (the CPU build has no CUDA target)');
    for (const o of ['allowClockControl', 'allowPowerControl', 'telemetry']) needs(cmd, o, ownsGpu, 'a GPU (--gpu N or --backend cuda)');
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
  .action(async (opts: { http?: number; host?: string }, cmd: Command) => {
    needs(cmd, 'host', opts.http !== undefined, '--http PORT');
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
  .command('compare')
  .description('compare variants against a baseline per point and environment: medians, speedup with 95% CI, test, verdict')
  .requiredOption('--sweep <id>', 'sweep id')
  .option('--baseline <spec>', 'baseline, as variant=NAME or build=NAME (default: the sweep file\'s baseline)')
  .option('--by-condition', 'one row per condition (gpu, clock, power) and variant: baseline ms, variant ms, speedup [CI]')
  .option('--include-flagged', 'include runs flagged throttled or clock-mismatch (left out by default)')
  .option('--clock-band <mhz>', 'group runs by observed SM clock in bands this wide (0: do not)', nonNegativeInt)
  .addOption(new Option('--json', 'print as JSON').conflicts(['csv', 'byCondition']))
  .option('--csv', 'print as CSV')
  .action(async (opts: { sweep: string; baseline?: string; json?: boolean; csv?: boolean; byCondition?: boolean; includeFlagged?: boolean; clockBand?: number }) => {
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
