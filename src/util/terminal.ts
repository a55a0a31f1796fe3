/**
 * User text made safe for a terminal, and bounded. A sweep key such as
 * `"\e[2J\e[31mgotcha"` was echoed raw in "unknown field" messages, so the
 * escape sequence ran in the user's terminal; a file of 80,000 unknown keys
 * printed an 890 KB line. Every message the CLI prints passes through
 * `forTerminal`; a single value quoted inside a message through `quoted`.
 */

/**
 * C0 controls (but tab and newline), DEL, C1 controls (U+009B is a one-character CSI on some terminals),
 * and the bidirectional overrides that can make shown text differ from the real text.
 */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_IN_VALUE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escape(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Longest line and most lines of a message the CLI prints. */
export const MAX_LINE_CHARS = 500;
export const MAX_LINES = 40;

/** A whole message: controls escaped, each line and the number of lines bounded. */
export function forTerminal(text: string): string {
  const lines = text.replace(UNSAFE, escape).split('\n');
  const kept = lines.slice(0, MAX_LINES).map((l) => (l.length > MAX_LINE_CHARS ? `${l.slice(0, MAX_LINE_CHARS)}… (${l.length - MAX_LINE_CHARS} more characters)` : l));
  if (lines.length > MAX_LINES) kept.push(`… (${lines.length - MAX_LINES} more lines)`);
  return kept.join('\n');
}

/** One value inside a message: every control escaped (newlines too), at most `max` characters. */
export function quoted(text: string, max = 60): string {
  const safe = text.replace(UNSAFE_IN_VALUE, escape);
  return `'${safe.length > max ? `${safe.slice(0, max)}…` : safe}'`;
}
