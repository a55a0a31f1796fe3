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
