/**
 * Reading a sweep file: YAML → zod-validated Sweep, with errors that name the
 * file, the path of the bad field and what was expected.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { SweepSchema, type Sweep } from '../schema/sweep.js';

/** Largest sweep file we read: a sweep is a few dozen lines, not a data set. */
const MAX_FILE_BYTES = 1 << 20;

export async function loadSweepFile(file: string): Promise<Sweep> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot read the sweep file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new UsageError(`${file}: the sweep file is larger than ${MAX_FILE_BYTES} bytes`);
  return parseSweepText(text, file);
}

export function parseSweepText(text: string, file: string): Sweep {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'YAML';
    throw new UsageError(`${file}: ${where}: malformed YAML: ${e.message.split('\n')[0]}`);
  }
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

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
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
