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

/** `--gpus`: 'all', or GPU indices separated by commas (0,1,2,3), each once. */
export function gpuList(value: string): number[] | 'all' {
  const v = value.trim();
  if (v === 'all') return 'all';
  const parts = v.split(',').map((p) => p.trim());
  const list = parts.map(integer);
  if (parts.length === 0 || list.some((n) => n === null || !Number.isSafeInteger(n))) {
    throw new InvalidArgumentError(`expected 'all' or GPU indices separated by commas (0,1,2,3), got "${value}"`);
  }
  const nums = list as number[];
  const twice = nums.find((n, i) => nums.indexOf(n) !== i);
  if (twice !== undefined) throw new InvalidArgumentError(`GPU ${twice} is listed twice in "${value}"`);
  return nums;
}

/** A percentage: 0 or more, decimals allowed (5, 2.5); at most 1000. */
export function percent(value: string): number {
  const v = value.trim();
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n > 1000) throw new InvalidArgumentError(`expected a percentage from 0 to 1000 (5, 2.5), got "${value}"`);
  return n;
}

/** A webhook URL: http:// or https:// with a host (its credentials, path and query are kept, and never logged). */
export function webhookUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected an http:// or https:// URL');
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') throw new InvalidArgumentError(`expected an http:// or https:// URL, got a ${u.protocol} URL`);
  return value;
}

/** A TCP port to listen on: 0 (any free port) to 65535. */
export function listenPort(value: string): number {
  const n = integer(value);
  if (n === null || n > 65535) throw new InvalidArgumentError(`expected a port from 0 (any free port) to 65535, got "${value}"`);
  return n;
}

/** A sweep label: letters, digits and . _ : / - (it is shown in tables and matched exactly). */
export function label(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/.test(value)) {
    throw new InvalidArgumentError(`expected a label of 1-64 letters, digits, '.', '_', ':', '/' or '-' starting with a letter or digit, got "${value}"`);
  }
  return value;
}

/**
 * A point in time: an ISO 8601 date (2026-11-27, midnight UTC) or date and time (2026-11-27T14:00,
 * 2026-11-27T14:00:00+01:00; without a zone, UTC), or an age: 30m, 12h, 7d (that long before now).
 */
export function pointInTime(value: string, now = Date.now()): Date {
  const v = value.trim();
  const age = /^(\d+)([mhd])$/.exec(v);
  if (age) return new Date(now - Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 'm' | 'h' | 'd']);
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?)?$/.exec(v);
  const d = m ? new Date(`${m[1]}T${m[2] ?? '00:00'}${m[3] ?? 'Z'}`) : null;
  // Date rolls 2026-02-31 over to March: a date given alone must read back as written.
  if (!m || !d || Number.isNaN(d.getTime()) || (m[2] === undefined && d.toISOString().slice(0, 10) !== m[1])) {
    throw new InvalidArgumentError(`expected a date (2026-11-27), a date and time (2026-11-27T14:00, UTC unless a zone is given) or an age (30m, 12h, 7d), got "${value}"`);
  }
  return d;
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

/** Refuses a command unless at least one of `options` is given (one of --sweep or --label, …). */
export function needsOneOf(cmd: Command, options: readonly string[], why = ''): void {
  if (options.some((o) => given(cmd, o))) return;
  throw new UsageError(`${commandPath(cmd)}: expected ${options.map((o) => flagOf(cmd, o)).join(' or ')}${why ? ` (${why})` : ''}`);
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
