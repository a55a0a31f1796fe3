/**
 * Reading a sweep file: YAML → zod-validated Sweep, with errors that name the
 * file, the path of the bad field and what was expected.
 *
 * The bytes are read and decoded by sweep/read.ts (regular files only, size
 * cap first, UTF-8 text only). The text is then checked for what YAML would
 * either accept silently or answer slowly: raw control characters, nesting
 * past MAX_DEPTH, more than MAX_ENTRIES lines and list items, duplicate keys.
 * The yaml package's own duplicate-key check (`uniqueKeys`) compares each key
 * with every earlier one of its map: a file of 20,000 unknown keys took 3.8 s
 * in it and 0.5 s without it (a 1 MiB file over a minute); the check here is
 * one Set per map, linear. Even linear, the parser needs 20-50 µs a node on
 * this project's 2-core machine (a 1 MiB file of keys: 2-5 s), so the number
 * of entries is counted (one pass over the text) before it is parsed.
 */
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { SweepSchema, type Sweep } from '../schema/sweep.js';
import { quoted } from '../util/terminal.js';
import { decodeSweepText, readSweepBytes } from './read.js';

/** Deepest nesting of maps and lists a sweep file may have: a real one has 4 levels (matrix, shape, list, map). */
export const MAX_DEPTH = 32;
/**
 * Most lines plus flow-list separators a sweep file may have (a real one: a few dozen lines, lists of up to a few
 * hundred values). The parser reads 10,000 entries in about 0.3 s here.
 */
export const MAX_ENTRIES = 10_000;

export async function loadSweepFile(file: string): Promise<Sweep> {
  return parseSweepText(decodeSweepText(await readSweepBytes(file), file), file);
}

export function parseSweepText(text: string, file: string): Sweep {
  checkPlainText(text, file);
  checkStructure(text, file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: false, lineCounter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'YAML';
    // The parser recurses: nesting the pre-scan did not see still ends in a stack overflow, said plainly here.
    if (/Maximum call stack size exceeded/.test(e.message)) throw new UsageError(`${file}: ${where}: nested too deeply (more than ${MAX_DEPTH} levels of maps and lists)`);
    throw new UsageError(`${file}: ${where}: malformed YAML: ${e.message.split('\n')[0]}`);
  }
  checkUniqueKeys(doc, file, lineCounter);
  let data: unknown;
  try {
    // maxAliasCount: a "billion laughs" file (aliases of aliases) is refused, not expanded.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new UsageError(`${file}: YAML: cannot be read: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data) || data instanceof Uint8Array) {
    throw new UsageError(`${file}: (top level): expected a mapping at the top level (name, pool, matrix, …)`);
  }
  const parsed = SweepSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) throw new UsageError(formatIssues(file, parsed.error.issues));
  return parsed.data;
}

/** C0 controls but tab, newline and carriage return; DEL; C1 controls. YAML has no use for them raw. */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

function checkPlainText(text: string, file: string): void {
  const m = CONTROL.exec(text);
  if (!m) return;
  const { line, col } = lineCol(text, m.index);
  const code = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
  throw new UsageError(`${file}: line ${line}, column ${col}: control character U+${code} is not allowed in a sweep file (it is plain YAML text)`);
}

/**
 * One pass over the text before the parser sees it. Nesting past MAX_DEPTH (the parser recurses, and took
 * seconds to fail on a 1 MiB file of `[`): flow brackets opened where a value starts (inside a flow collection,
 * or first on a line, or after `: ` / `- `), outside quotes and comments; and block nesting, as the columns of
 * indentation and `- ` / `? ` markers before a line's content (two per level at the least). And the number of
 * entries: lines plus commas inside flow collections, at most MAX_ENTRIES.
 */
function checkStructure(text: string, file: string): void {
  let entries = 1;
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  let quote: '"' | "'" | null = null;
  let valueStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      if (++entries > MAX_ENTRIES) throw tooManyEntries(text, file);
      line++;
      lineStart = i + 1;
      valueStart = true;
      let j = i + 1;
      while (j < text.length && (text[j] === ' ' || ((text[j] === '-' || text[j] === '?') && (text[j + 1] === ' ' || text[j + 1] === '\n')))) j++;
      if (quote === null && depth === 0 && j - i - 1 > 2 * MAX_DEPTH) throw new UsageError(`${file}: line ${line}, column ${j - i}: nested too deeply (more than ${MAX_DEPTH} levels of maps and lists)`);
      continue;
    }
    if (quote !== null) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'") {
      if (valueStart || depth > 0) quote = c;
      valueStart = false;
    } else if (c === '#' && (i === lineStart || text[i - 1] === ' ' || text[i - 1] === '\t')) {
      const nl = text.indexOf('\n', i);
      i = (nl < 0 ? text.length : nl) - 1;
    } else if ((c === '[' || c === '{') && (valueStart || depth > 0)) {
      if (++depth > MAX_DEPTH) throw new UsageError(`${file}: line ${line}, column ${i - lineStart + 1}: nested too deeply (more than ${MAX_DEPTH} levels of maps and lists)`);
      valueStart = true;
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    } else if (c === ',' && depth > 0) {
      if (++entries > MAX_ENTRIES) throw tooManyEntries(text, file);
      valueStart = true;
    } else if ((c === ':' || c === '-' || c === '?') && (text[i + 1] === ' ' || text[i + 1] === '\n')) {
      valueStart = true;
    } else if (c !== ' ' && c !== '\t' && c !== '\r') {
      valueStart = false;
    }
  }
}

function tooManyEntries(text: string, file: string): UsageError {
  let lines = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  return new UsageError(`${file}: (file): more than ${MAX_ENTRIES} lines and list items (${lines} lines); a sweep file is a few dozen lines: split it`);
}

/**
 * Each map's keys once: a Set per map (linear), where the yaml package compares every pair. And no control
 * character in any string, written as an escape (`"\x07"`, `"\e[2J"`) as much as raw: the text check sees
 * only raw ones, and a value reaches logs, the database and terminals.
 */
function checkUniqueKeys(doc: Document, file: string, lineCounter: LineCounter): void {
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string') return;
      const m = CONTROL.exec(node.value);
      if (!m) return;
      const here = lineCounter.linePos(node.range?.[0] ?? 0);
      const code = m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
      throw new UsageError(`${file}: line ${here.line}, column ${here.col}: control character U+${code} (written as an escape) in ${quoted(node.value.slice(0, 40))}; a sweep file's values are plain text`);
    },
    Map(_key, map) {
      const seen = new Map<string, number>();
      for (const pair of map.items) {
        const k = pair.key;
        const name = isScalar(k) ? String(k.value) : isMap(k) ? JSON.stringify(k.toJSON()) : String(k);
        const at = isScalar(k) || isMap(k) ? (k.range?.[0] ?? 0) : 0;
        const first = seen.get(name);
        if (first !== undefined) {
          const here = lineCounter.linePos(at);
          throw new UsageError(`${file}: line ${here.line}, column ${here.col}: malformed YAML: map key ${quoted(name)} appears twice (first at line ${lineCounter.linePos(first).line})`);
        }
        seen.set(name, at);
      }
    },
  });
}

function lineCol(text: string, index: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: index - start + 1 };
}

/** Render zod issues as `file: path: message` lines, the first one first. */
export function formatIssues(file: string, issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((issue) => `${file}: ${formatPath(issue.path)}: ${describeIssue(issue)}`).join('\n');
}

export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

const MAX_KEYS_SHOWN = 5;

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    // Bounded: a file of 80,000 unknown keys printed them all on one 890 KB line.
    const shownKeys = issue.keys.slice(0, MAX_KEYS_SHOWN).map((k) => quoted(k));
    const more = issue.keys.length > MAX_KEYS_SHOWN ? ` and ${issue.keys.length - MAX_KEYS_SHOWN} more` : '';
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${shownKeys.join(', ')}${more}`;
  }
  if (issue.code === 'invalid_type' && 'input' in issue && issue.input === undefined) return `missing: ${issue.message.replace(/^Invalid input: /, '')}`;
  const got = 'input' in issue && issue.input !== undefined ? `, got ${shown(issue.input)}` : '';
  return `${issue.message}${got}`;
}

/** The offending value as the user wrote it: JSON, but NaN and Infinity by name (JSON would say null). */
function shown(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return (JSON.stringify(value) ?? String(value)).slice(0, 60);
}
