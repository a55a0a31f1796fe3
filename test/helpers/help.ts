/**
 * Every command of the built CLI, found the way a user finds them: by
 * reading `moefarm --help` and then each command's own `--help`. A command
 * added later is found without changing this file.
 */
import { cli } from './services.js';

export interface HelpEntry {
  /** Words after `moefarm`: [] for the program, ['sweep', 'submit'] for a command. */
  path: string[];
  help: string;
  /** Long flags (and short ones that have no long form) of this command, without --help. */
  flags: string[];
  /** Names of its subcommands, without `help`. */
  subcommands: string[];
}

/** The entries of one section of commander's help ("Options:", "Commands:"): lines indented by exactly two spaces. */
function section(help: string, title: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf(`${title}:`);
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    if (/^ {2}\S/.test(line)) out.push(line.slice(2));
  }
  return out;
}

export function parseHelp(path: string[], help: string): HelpEntry {
  const flags = section(help, 'Options').flatMap((entry) => {
    const term = entry.split(/\s{2,}/)[0]!;
    const names = term.split(',').map((s) => s.trim().split(/[\s<[]/)[0]!);
    const long = names.find((n) => n.startsWith('--'));
    const flag = long ?? names[0]!;
    return flag === '--help' || flag === '-h' ? [] : [flag];
  });
  const subcommands = section(help, 'Commands')
    .map((entry) => entry.split(/\s/)[0]!)
    .filter((name) => name !== 'help');
  return { path, help, flags, subcommands };
}

/** The program and every command below it, parents before children. */
export async function helpTree(): Promise<HelpEntry[]> {
  const out: HelpEntry[] = [];
  let level: string[][] = [[]];
  while (level.length) {
    const entries = await Promise.all(
      level.map(async (path) => {
        const r = await cli([...path, '--help'], {}, { timeoutMs: 60_000 });
        if (r.exitCode !== 0) throw new Error(`moefarm ${path.join(' ')} --help exited ${r.exitCode}: ${r.stderr}`);
        return parseHelp(path, r.stdout);
      }),
    );
    out.push(...entries);
    level = entries.flatMap((e) => e.subcommands.map((s) => [...e.path, s]));
  }
  return out;
}

/** Splits a markdown table row into cells; `\|` inside a cell is a literal bar. */
function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));
}

export interface ReadmeRow {
  /** Words after `moefarm` up to the first argument or option. */
  path: string[];
  flags: string[];
  line: number;
}

const COMMAND_TABLE_HEADER = '| command | what it does |';

/**
 * The rows of the README's command table (the one headed
 * `| command | what it does |`); each first cell is one `` `moefarm …` `` usage. A command may have several rows (one per way of using
 * it); the options of a command are those named in the first cells of its rows.
 */
export function readmeCommandRows(readme: string): ReadmeRow[] {
  const out: ReadmeRow[] = [];
  const lines = readme.split('\n');
  const header = lines.findIndex((l) => l.trim() === COMMAND_TABLE_HEADER);
  if (header < 0) throw new Error(`README.md: no command table (a table whose header is "${COMMAND_TABLE_HEADER}")`);
  let end = lines.findIndex((l, i) => i > header && !l.startsWith('|'));
  if (end < 0) end = lines.length;
  lines.slice(header + 2, end).forEach((line, j) => {
    const i = header + 2 + j;
    const usage = /^`([^`]+)`$/.exec(cells(line)[0]!)?.[1];
    if (!usage) throw new Error(`README.md:${i + 1}: the first cell should be one \`moefarm …\` usage: ${line}`);
    const words = usage.split(/\s+/).slice(1);
    const path: string[] = [];
    for (const w of words) {
      if (!/^[a-z][a-z-]*$/.test(w)) break;
      path.push(w);
    }
    const flags = [...usage.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])/g)].map((m) => m[1]!);
    out.push({ path, flags, line: i + 1 });
  });
  return out;
}

/** The README's exit code table: rows `| N | meaning |` under the "Exit codes" paragraph. */
export function readmeExitCodes(readme: string): Array<{ code: number; meaning: string }> {
  const start = readme.indexOf('\nExit codes');
  if (start < 0) return [];
  const out: Array<{ code: number; meaning: string }> = [];
  for (const line of readme.slice(start).split('\n').slice(1)) {
    if (out.length && !line.startsWith('|')) break;
    const m = /^\| (\d+) \| (.+) \|$/.exec(line);
    if (m) out.push({ code: Number(m[1]), meaning: m[2]!.trim() });
  }
  return out;
}
