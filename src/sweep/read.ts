/**
 * Reading a sweep file's bytes, safely, and turning them into text.
 *
 * What a path can be besides a YAML file, each seen to fail: a FIFO blocked
 * `sweep submit` for ever (a plain read waits for a writer); `/dev/zero` was
 * read until V8 gave up; UTF-16, gzip and binary files got YAML messages that
 * did not say what was wrong. So: the file is opened non-blocking and checked
 * with fstat (the very file that was opened, not the path again) before a byte
 * is read: a regular file, no larger than the cap; then at most cap + 1 bytes
 * are read (a file growing meanwhile is caught); then the bytes are checked to
 * be UTF-8 text, and each refusal says what the file looks like instead.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { UsageError } from '../errors.js';

/** Largest sweep file we read: a sweep is a few dozen lines, not a data set. */
export const MAX_FILE_BYTES = 1 << 20;

export async function readSweepBytes(file: string): Promise<Buffer> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new UsageError(`${file}: cannot read the sweep file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      const what = st.isFIFO() ? 'a FIFO (named pipe)' : st.isDirectory() ? 'a directory' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'not a file';
      throw new UsageError(`${file}: (file): not a regular file but ${what}; give the path of a YAML sweep file`);
    }
    if (st.size > MAX_FILE_BYTES) throw tooLarge(file, st.size);
    // Read to the end, but never past the cap: a file that grows after the stat is still bounded.
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_FILE_BYTES) throw new UsageError(`${file}: (file): grew past the ${MAX_FILE_BYTES}-byte limit of a sweep file while it was read`);
    }
    return buf.subarray(0, length);
  } finally {
    await handle.close();
  }
}

function tooLarge(file: string, size: number): UsageError {
  return new UsageError(`${file}: (file): ${size} bytes, larger than the ${MAX_FILE_BYTES}-byte limit of a sweep file`);
}

const ARCHIVES: Array<[string, number[]]> = [
  ['gzip-compressed data, not YAML text; decompress it first (gunzip)', [0x1f, 0x8b]],
  ['a bzip2 archive, not YAML text', [0x42, 0x5a, 0x68]],
  ['an xz archive, not YAML text', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['a zstd archive, not YAML text', [0x28, 0xb5, 0x2f, 0xfd]],
  ['a zip archive, not YAML text', [0x50, 0x4b, 0x03, 0x04]],
  ['an ELF executable, not YAML text', [0x7f, 0x45, 0x4c, 0x46]],
  ['a PDF document, not YAML text', [0x25, 0x50, 0x44, 0x46, 0x2d]],
];

/** The bytes as UTF-8 text (a UTF-8 byte-order mark dropped), or a UsageError saying what they are instead. */
export function decodeSweepText(bytes: Buffer, file: string): string {
  const starts = (sig: number[]) => sig.every((b, i) => bytes[i] === b);
  const refuse = (what: string) => new UsageError(`${file}: (file): ${what}`);
  for (const [what, sig] of ARCHIVES) if (starts(sig)) throw refuse(what);
  const asUtf8 = 'sweep files are UTF-8: save it as UTF-8';
  if (starts([0xff, 0xfe, 0, 0]) || starts([0, 0, 0xfe, 0xff])) throw refuse(`UTF-32 text (it starts with a UTF-32 byte-order mark); ${asUtf8}`);
  if (starts([0xff, 0xfe])) throw refuse(`UTF-16 LE text (it starts with a UTF-16 byte-order mark); ${asUtf8}`);
  if (starts([0xfe, 0xff])) throw refuse(`UTF-16 BE text (it starts with a UTF-16 byte-order mark); ${asUtf8}`);
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    // UTF-16 without a mark: ASCII text with a NUL beside every character.
    const sample = bytes.subarray(0, Math.min(bytes.length, 4096));
    let nuls = 0;
    for (const b of sample) if (b === 0) nuls++;
    if (nuls * 3 >= sample.length) throw refuse(`UTF-16 text (every other byte is NUL); ${asUtf8}`);
    throw refuse(`binary data (a NUL byte at offset ${nul}), not YAML text`);
  }
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    const { line, col } = position(bytes, bad);
    throw new UsageError(`${file}: line ${line}, column ${col}: byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} is not UTF-8; save the file as UTF-8`);
  }
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlongs, no surrogates), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined) return i;
      if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** 1-based line and column (in characters) of a byte offset. */
function position(bytes: Buffer, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: bytes.subarray(start, offset).toString('utf8').length + 1 };
}
