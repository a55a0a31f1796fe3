/**
 * How the command line reads option values and refuses bad combinations.
 * Each parser's name says what it accepts; every refusal is a usage error
 * (exit code 2), raised before a command opens a service or starts a process.
 */
import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import { UsageError } from './errors.js';

/** The exit codes: `--help` of every command prints them, and the README's table must match (test/cli.test.ts). */
export const EXIT_CODES: ReadonlyArray<{ code: number; meaning: string }> = [
  { code: 0, meaning: 'success' },
  { code: 1, meaning: 'a failure while working (a run, the database, a file)' },
  { code: 2, meaning: 'usage error: unknown command or option, bad value, conflicting options, invalid sweep file' },
  { code: 3, meaning: 'a service is unreachable (Redis, the database)' },
  { code: 130, meaning: 'stopped at once by a second SIGINT/SIGTERM' },
];

export const EXIT_CODES_HELP = ['Exit codes:', ...EXIT_CODES.map((e) => `  ${String(e.code).padEnd(4)}${e.meaning}`)].join('\n');

function integer(value: string): number | null {
  // Number('') is 0 and Number('1e3') is 1000: accept plain decimal digits only.
  return /^\d+$/.test(value.trim()) ? Number(value.trim()) : null;
}

/** 1, 2, 3, … */
export function positiveInt(value: string): number {
  const n = integer(value);
  if (n === null || n < 1 || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected a positive integer (1 or more), got "${value}"`);
  return n;
}

/** 0, 1, 2, … */
export function nonNegativeInt(value: string): number {
  const n = integer(value);
  if (n === null || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected a non-negative integer (0 or more), got "${value}"`);
  return n;
}

/** A TCP port to listen on: 0 (any free port) to 65535. */
export function listenPort(value: string): number {
  const n = integer(value);
  if (n === null || n > 65535) throw new InvalidArgumentError(`expected a port from 0 (any free port) to 65535, got "${value}"`);
  return n;
}

/** True when the user gave this option (not its default, not absent). */
function given(cmd: Command, option: string): boolean {
  const source = cmd.getOptionValueSource(option);
  return source !== undefined && source !== 'default' && source !== 'implied';
}

/**
 * Refuses `option` unless `condition` holds (commander has `conflicts()` for
 * pairs that exclude each other, but no "needs"): an option that would be
 * silently ignored is a usage error instead.
 */
export function needs(cmd: Command, option: string, condition: boolean, what: string): void {
  if (given(cmd, option) && !condition) throw new UsageError(`${commandPath(cmd)}: ${flagOf(cmd, option)} needs ${what}`);
}

/** `moefarm sweep submit`, for messages. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function flagOf(cmd: Command, attribute: string): string {
  return cmd.options.find((o) => o.attributeName() === attribute)?.long ?? attribute;
}

/**
 * Commander's own errors (unknown command or option, missing or bad value,
 * conflicting options, a command group run without a subcommand) are usage
 * errors; asking for help or the version is not an error.
 */
export function commanderExitCode(err: CommanderError): number {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
  return 2;
}
