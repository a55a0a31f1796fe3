/**
 * The command line as a user meets it: the built CLI as a child process.
 * Usage errors exit 2 before anything starts; every command's --help lists
 * the exit codes.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../src/cli-args.js';
import { cli } from './helpers/services.js';
import { helpTree } from './helpers/help.js';

// Nothing answers here: a usage error must be refused before any service is asked for.
const NO_SERVICES = { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'file:/nonexistent/dir/never.db' };

describe('usage errors exit 2 and start nothing', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown option', ['--bogus'], /unknown option '--bogus'/],
    ['unknown command', ['bogus'], /unknown command 'bogus'/],
    ['unknown subcommand', ['sweep', 'bogus'], /unknown command 'bogus'/],
    ['a command group alone', ['results'], /Usage: moefarm results/],
    ['missing argument', ['sweep', 'submit'], /missing required argument 'file'/],
    ['missing required option', ['results', 'compare'], /required option '--sweep <id>' not specified/],
    ['bad choice', ['worker', '--backend', 'gpu'], /argument 'gpu' is invalid/],
    ['port out of range', ['serve', '--http', '99999'], /expected a port from 0 \(any free port\) to 65535, got "99999"/],
    ['port not a number', ['serve', '--http', '80a'], /expected a port/],
    ['zero where positive', ['results', 'list', '--limit', '0'], /expected a positive integer \(1 or more\), got "0"/],
    ['negative GPU index', ['worker', '--gpu', '-1'], /expected a non-negative integer/],
    ['a fraction', ['results', 'compare', '--sweep', 'x', '--clock-band', '2.5'], /expected a non-negative integer/],
    ['--json with --csv (compare)', ['results', 'compare', '--sweep', 'x', '--json', '--csv'], /'--json' cannot be used with option '--csv'/],
    ['--json with --by-condition', ['results', 'compare', '--sweep', 'x', '--json', '--by-condition'], /'--json' cannot be used with option '--by-condition'/],
    ['--json with --csv (history)', ['results', 'history', '--point', 'abcdef', '--json', '--csv'], /'--json' cannot be used with option '--csv'/],
    ['--dry-run with --until-confident', ['sweep', 'submit', 'sweeps/demo.yaml', '--dry-run', '--until-confident'], /'--dry-run' cannot be used with option '--until-confident'/],
    ['--budget alone', ['sweep', 'submit', 'sweeps/demo.yaml', '--budget', '3'], /moefarm sweep submit: --budget needs --until-confident/],
    ['--host without --http', ['serve', '--host', '0.0.0.0'], /moefarm serve: --host needs --http PORT/],
    ['--arch on the CPU backend', ['worker', '--arch', 'sm_89'], /--arch needs --backend cuda/],
    ['clock control without a GPU', ['worker', '--allow-clock-control'], /--allow-clock-control needs a GPU/],
    ['power control without a GPU', ['worker', '--allow-power-control'], /--allow-power-control needs a GPU/],
    ['--no-telemetry without a GPU', ['worker', '--no-telemetry'], /--no-telemetry needs a GPU/],
    ['a status that does not exist', ['results', 'list', '--status', 'finished'], /--status: expected one of queued, done, .*got "finished"/],
    ['a baseline without variant=', ['results', 'compare', '--sweep', 'x', '--baseline', 'fused'], /--baseline: expected variant=NAME/],
  ];
  it.each(cases)('%s', async (_name, args, message) => {
    const r = await cli(args, NO_SERVICES, { timeoutMs: 60_000 });
    expect(r.stderr).toMatch(message);
    // Exited on its own with 2 (a command left running would be killed by the timeout: no exit code).
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('the same options in accepted combinations still run (the checks refuse only what they name)', async () => {
    const dry = await cli(['sweep', 'submit', 'sweeps/demo.yaml', '--dry-run', '--json'], NO_SERVICES);
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, name: 'demo' });
    const help = await cli(['worker', '--gpu', '0', '--no-telemetry', '--help'], NO_SERVICES);
    expect(help.exitCode).toBe(0);
  });

  it('--version and --help exit 0', async () => {
    expect((await cli(['--version'], NO_SERVICES)).exitCode).toBe(0);
    const h = await cli(['--help'], NO_SERVICES);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toMatch(/Usage: moefarm/);
  });
});

describe('--help', () => {
  it('every command lists the exit codes', async () => {
    const tree = await helpTree();
    expect(tree.length).toBeGreaterThan(10);
    for (const c of tree) {
      for (const e of EXIT_CODES) expect(c.help, `moefarm ${c.path.join(' ')} --help`).toContain(`${e.code}`.padEnd(4) + e.meaning);
    }
  });
});
