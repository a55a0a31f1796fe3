/**
 * How a failed zod check is told to a person: one `where: path: what` line per
 * issue. Every boundary uses it: a sweep file (sweep/load.ts), a job payload
 * (worker.ts), the binary's JSON (worker/run-binary.ts), an outcome or job the
 * collector cannot read (collector.ts).
 */
import type { z } from 'zod';
import { quoted } from '../util/terminal.js';

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
