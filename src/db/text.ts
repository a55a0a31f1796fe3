/**
 * Text made storable in both databases. Postgres refuses a NUL byte in a text
 * value outright (`invalid byte sequence for encoding "UTF8": 0x00`): one NUL
 * in a binary's stderr made a result unwritable, retried for ever, and failed
 * every healthy result batched with it. Lone UTF-16 surrogates (from a JSON
 * `\ud800` escape) are not UTF-8 either; each driver replaced them on its own
 * terms. Both are replaced here, the same way for SQLite and Postgres, so a
 * row reads back the same from either: NUL as U+2400 (the visible "NUL"
 * symbol, so a reader still sees that there was one), a lone surrogate as
 * U+FFFD. Invalid UTF-8 from a process's output never gets this far: it is
 * decoded to U+FFFD when read.
 */

const NUL = /\u0000/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function storable(text: string): string {
  return text.replace(NUL, '\u2400').replace(LONE_SURROGATE, '\uFFFD');
}

/** A value bound into a statement: strings made storable, anything else as it is. */
export function storableValue<T>(value: T): T {
  return (typeof value === 'string' ? storable(value) : value) as T;
}
