/**
 * A source bundle: the build inputs as a gzip-compressed tar (built with the
 * `tar` package's header encoder: regular files only, sorted, mode 0644,
 * owner 0, time 0), named by the source hash (inputs.ts), never by the
 * archive's bytes.
 *
 * Reading one treats it as untrusted (a job names a hash; anyone who can
 * write to Redis can write the bytes): the compressed size is capped before
 * anything is read, the archive is parsed in memory with caps on files and
 * unpacked bytes, every entry must be a regular file with a safe relative
 * path (no absolute path, no '..', no link of any kind, no duplicate), and
 * the hash of what it holds must be the hash asked for. Only then may a
 * caller write it to disk (writeSnapshot).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import { bundleMaxBytes } from '../config.js';
import { hashSources, snapshotOf, sortFiles, unsafePathReason, type SourceFile, type SourceSnapshot } from './inputs.js';

export interface BundleLimits {
  /** Compressed size (what Redis holds). */
  maxCompressedBytes: number;
  /** Sum of the files' sizes once unpacked. */
  maxBytes: number;
  maxFiles: number;
}

/**
 * The limits in force. The sources are about 140 KB in 8 files (about 40 KB compressed), so these
 * leave room for a much larger kernel tree while a hostile bundle cannot fill a worker's disk or memory.
 */
export function bundleLimits(): BundleLimits {
  return { maxCompressedBytes: bundleMaxBytes(), maxBytes: 64 * 1024 * 1024, maxFiles: 2000 };
}

/** A bundle that cannot be used; the message says why, for a run's `reason`. */
export class BundleError extends Error {
  override readonly name = 'BundleError';
}

export function packBundle(snapshot: SourceSnapshot): Buffer {
  const blocks: Buffer[] = [];
  for (const f of sortFiles(snapshot.files)) {
    const data = { path: f.path, mode: 0o644, uid: 0, gid: 0, size: f.data.length, mtime: new Date(0), type: 'File' as const, uname: '', gname: '' };
    const header = new Header(data);
    if (header.encode()) blocks.push(new Pax(data).encode());
    blocks.push(header.block!);
    blocks.push(f.data);
    const pad = (512 - (f.data.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024)); // end of archive: two zero blocks
  return gzipSync(Buffer.concat(blocks), { level: 9 });
}

/** The files of a bundle, checked against `expectedHash` and the limits; throws BundleError. Nothing touches the disk. */
export async function readBundle(blob: Buffer, expectedHash: string, limits: BundleLimits = bundleLimits()): Promise<SourceSnapshot> {
  const name = `bundle ${expectedHash.slice(0, 12)}`;
  if (blob.length > limits.maxCompressedBytes) throw new BundleError(`${name}: ${blob.length} bytes, more than the limit of ${limits.maxCompressedBytes}`);
  const files: SourceFile[] = [];
  const seen = new Set<string>();
  let bytes = 0;
  let refusal: string | null = null;
  await new Promise<void>((resolveParse, rejectParse) => {
    let settled = false;
    const fail = (why: string) => {
      refusal ??= why;
      if (!settled) {
        settled = true;
        parser.abort(new Error(why));
        rejectParse(new BundleError(`${name}: ${why}`));
      }
    };
    const parser = new Parser({
      strict: true,
      // Refuse a decompression bomb early (source text compresses about 4x).
      maxDecompressionRatio: 1000,
      onReadEntry: (entry: ReadEntry) => {
        if (refusal) return void entry.resume();
        const path = entry.path;
        const why = unsafePathReason(path.replace(/\/$/, ''));
        if (why) return fail(`entry "${path.slice(0, 120)}" refused: ${why}`);
        if (entry.type === 'Directory') return void entry.resume();
        if (entry.type !== 'File' && entry.type !== 'OldFile') {
          const kind = entry.type === 'SymbolicLink' ? `a symbolic link (to "${String(entry.linkpath).slice(0, 120)}")` : entry.type === 'Link' ? 'a hard link' : `a ${entry.type} entry`;
          return fail(`entry "${path}" refused: ${kind}; a source holds regular files only`);
        }
        if (seen.has(path)) return fail(`entry "${path}" appears twice`);
        seen.add(path);
        if (files.length + 1 > limits.maxFiles) return fail(`more than ${limits.maxFiles} files`);
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes > limits.maxBytes) fail(`unpacks to more than ${limits.maxBytes} bytes`);
          else chunks.push(c);
        });
        entry.on('end', () => {
          if (!refusal) files.push({ path, data: Buffer.concat(chunks) });
        });
      },
    });
    parser.on('error', (err: Error) => fail(`truncated or corrupt (${err.message})`));
    parser.on('warn', (_code: string, message: string | Error) => fail(`truncated or corrupt (${String(message instanceof Error ? message.message : message)})`));
    parser.on('end', () => {
      if (!settled) {
        settled = true;
        resolveParse();
      }
    });
    parser.end(blob);
  });
  if (files.length === 0) throw new BundleError(`${name}: holds no files (empty or truncated)`);
  const got = hashSources(files);
  if (got !== expectedHash) throw new BundleError(`${name}: its files hash to ${got.slice(0, 12)}, not to the hash the job names (tampered, or another bundle under this key)`);
  return snapshotOf(files);
}

/**
 * Writes a checked snapshot to `dest`, through a private folder and one rename, so a folder
 * under its final name is always whole. An existing `dest` (another worker got there first) is kept.
 */
export async function writeSnapshot(snapshot: SourceSnapshot, dest: string): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    for (const f of snapshot.files) {
      const target = join(tmp, f.path);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, f.data, { mode: 0o644, flag: 'wx' });
    }
    await mkdir(dirname(dest), { recursive: true });
    try {
      await rename(tmp, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
