/**
 * The command line as a user meets it: the built CLI as a child process.
 * Usage errors exit 2 before anything starts; every command's --help lists
 * the exit codes.
 */
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../src/cli-args.js';
import { cli, ROOT, sqliteUrl, tempDir } from './helpers/services.js';
import { helpTree, readmeCommandRows, readmeExitCodes, type HelpEntry } from './helpers/help.js';

// Nothing answers here: a usage error must be refused before any service is asked for.
const NO_SERVICES = { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'file:/nonexistent/dir/never.db' };

describe('usage errors exit 2 and start nothing', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown option', ['--bogus'], /unknown option '--bogus'/],
    ['unknown command', ['bogus'], /unknown command 'bogus'/],
    ['unknown subcommand', ['sweep', 'bogus'], /unknown command 'bogus'/],
    ['a command group alone', ['results'], /Usage: moefarm results/],
    ['missing argument', ['sweep', 'submit'], /missing required argument 'file'/],
    ['missing required option', ['report'], /required option '--sweep <id>' not specified/],
    ['compare without --sweep or --label', ['results', 'compare'], /moefarm results compare: expected --sweep or --label/],
    ['--sweep with --label', ['results', 'compare', '--sweep', 'x', '--label', 'y'], /'--sweep <id>' cannot be used with option '--label <label>'/],
    ['--against with --label', ['results', 'compare', '--label', 'x', '--against', 'y'], /--against needs --sweep ID/],
    ['--against-label with --sweep', ['results', 'compare', '--sweep', 'x', '--against-label', 'y'], /--against-label needs --label L/],
    ['--baseline with --against', ['results', 'compare', '--sweep', 'x', '--against', 'y', '--baseline', 'variant=a'], /'--baseline <spec>' cannot be used with option '--against <id>'/],
    ['a bare db prune', ['db', 'prune'], /moefarm db prune: expected --before or --sweep or --label \(a bare prune would delete every sweep\)/],
    ['a date that does not exist', ['db', 'prune', '--before', '2026-02-30'], /expected a date \(2026-11-27\), a date and time .*got "2026-02-30"/],
    ['an age without a unit', ['sweep', 'list', '--since', '7'], /expected a date .* or an age \(30m, 12h, 7d\), got "7"/],
    ['a label with a space', ['sweep', 'submit', 'sweeps/demo.yaml', '--label', 'a b'], /expected a label of 1-64 letters/],
    ['retrying done runs', ['sweep', 'retry', 'x', '--status', 'done'], /--status: done runs have their results/],
    ['retrying an unknown outcome', ['sweep', 'retry', 'x', '--status', 'crashed,exploded'], /--status: "exploded" is not an outcome/],
    ['--retry with --dry-run', ['sweep', 'submit', 'sweeps/demo.yaml', '--retry', '--dry-run'], /cannot be used with option '--dry-run'/],
    ['export --json with --csv', ['results', 'export', '--sweep', 'x', '--json', '--csv'], /'--json' cannot be used with option '--csv'/],
    ['an unknown log format', ['serve', '--log-format', 'xml'], /argument 'xml' is invalid. Allowed choices are pretty, json/],
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

  it('serve --http on a port that is taken fails (exit 1) before a collector starts, and does not stay up', async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
    const port = (taken.address() as AddressInfo).port;
    const t = tempDir('cli-serve');
    try {
      const r = await cli(['serve', '--http', String(port)], { DATABASE_URL: sqliteUrl(t.dir) }, { timeoutMs: 60_000 });
      expect(r.stderr).toMatch(new RegExp(`--http ${port}: cannot listen on 127\\.0\\.0\\.1: listen EADDRINUSE`));
      expect(r.stderr).not.toMatch(/collector: writing results/);
      expect(r.exitCode).toBe(1);
    } finally {
      taken.close();
      t.cleanup();
    }
  });

  it('--version and --help exit 0', async () => {
    expect((await cli(['--version'], NO_SERVICES)).exitCode).toBe(0);
    const h = await cli(['--help'], NO_SERVICES);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toMatch(/Usage: moefarm/);
  });
});

describe('--help and the README agree', () => {
  // Commands are found by reading --help, so a command added later is checked without touching this file.
  let tree: HelpEntry[];
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  beforeAll(async () => {
    tree = await helpTree();
  });

  it('finds the commands (the help parser works)', () => {
    const names = tree.map((c) => c.path.join(' '));
    expect(names).toEqual(expect.arrayContaining(['', 'sweep', 'sweep submit', 'results compare', 'worker', 'db migrate']));
    expect(tree.find((c) => c.path.join(' ') === 'worker')!.flags).toEqual(expect.arrayContaining(['--pool', '--gpu', '--no-telemetry']));
    expect(tree.find((c) => c.path.join(' ') === 'report')!.flags).toContain('--output');
  });

  it('every command and option in --help is in the README command table, and nothing else is', () => {
    const rows = readmeCommandRows(readme);
    expect(rows.length).toBeGreaterThan(5);
    const key = (p: string[]) => p.join(' ');
    const commands = new Map(tree.map((c) => [key(c.path), c]));
    const problems: string[] = [];
    // Short forms count as their long option (report's -o is --output).
    const shortToLong = new Map<string, Map<string, string>>();
    for (const c of tree) {
      const m = new Map<string, string>();
      for (const line of c.help.split('\n')) {
        const s = /^ {2}(-[a-zA-Z]), (--[a-z][a-z0-9-]*)/.exec(line);
        if (s) m.set(s[1]!, s[2]!);
      }
      shortToLong.set(key(c.path), m);
    }
    const documented = new Map<string, Set<string>>();
    for (const r of rows) {
      const c = commands.get(key(r.path));
      if (!c || (c.subcommands.length && r.path.length)) {
        problems.push(`README.md:${r.line}: \`moefarm ${key(r.path)}\` is not a command (moefarm --help does not list it)`);
        continue;
      }
      const set = documented.get(key(r.path)) ?? new Set<string>();
      for (const f of r.flags) set.add(shortToLong.get(key(r.path))?.get(f) ?? f);
      documented.set(key(r.path), set);
    }
    for (const c of tree) {
      if (c.subcommands.length && c.path.length) continue; // a command group: its commands have the rows
      const doc = documented.get(key(c.path));
      const name = `moefarm ${key(c.path)}`.trim();
      if (!doc) {
        problems.push(`${name}: no row in the README's command table`);
        continue;
      }
      for (const f of c.flags) if (!doc.has(f)) problems.push(`${name}: ${f} is in --help but not in the README's command table`);
      for (const f of doc) if (!c.flags.includes(f)) problems.push(`${name}: ${f} is in the README's command table but not in --help`);
    }
    expect(problems).toEqual([]);
  });

  it('the README lists the exit codes that --help prints', () => {
    expect(readmeExitCodes(readme)).toEqual(EXIT_CODES);
  });

  it('every command lists the exit codes', () => {
    expect(tree.length).toBeGreaterThan(10);
    for (const c of tree) {
      for (const e of EXIT_CODES) expect(c.help, `moefarm ${c.path.join(' ')} --help`).toContain(`${e.code}`.padEnd(4) + e.meaning);
    }
  });
});

describe('the README drift check itself', () => {
  it('reports a command or option missing on either side', () => {
    const rows = readmeCommandRows(
      ['| command | what it does |', '| --- | --- |', '| `moefarm sweep submit FILE [--dry-run] [--json\\|--csv]` | x |', '| `moefarm report --sweep ID [-o FILE]` | y |', '| `moefarm --version` | v |'].join('\n'),
    );
    expect(rows.map((r) => [r.path.join(' '), r.flags])).toEqual([
      ['sweep submit', ['--dry-run', '--json', '--csv']],
      ['report', ['--sweep', '-o']],
      ['', ['--version']],
    ]);
  });
});
