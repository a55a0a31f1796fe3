/**
 * The build inputs of moe-bench: the files a build is made from, named by the
 * manifest `csrc/build-inputs.txt` (globs relative to csrc/). One list serves
 * the source hash, the build cache key (worker/build.ts) and the source
 * bundle a sweep carries (source/bundle.ts), so a results CSV, a note or a
 * script committed to csrc/ never changes the source hash.
 *
 * The source hash is sha256 over the sorted file list and contents
 * (`path NUL size NUL bytes` per file), not over an archive's bytes: it does
 * not depend on tar or gzip versions, a worker's own checkout hashes to the
 * same value as a bundle of it, and a bundle is checked by hashing what it
 * unpacks to, in memory, before anything is written.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import picomatch from 'picomatch';

export const BUILD_INPUTS_FILE = 'build-inputs.txt';

export interface SourceFile {
  /** Relative to the source root (csrc/), '/'-separated. */
  path: string;
  data: Buffer;
}

export interface SourceSnapshot {
  /** sha256 (hex, 64) over the sorted paths and contents: the source's identity. */
  hash: string;
  files: SourceFile[];
  /** Sum of the files' sizes. */
  bytes: number;
}

/** Thrown for a source tree or manifest that cannot be used; the message names the file. */
export class SourceError extends Error {
  override readonly name = 'SourceError';
}

/** A path a source may hold: relative, '/'-separated, no '.' or '..' segments, a plain character set. */
const SAFE_PATH = /^(?!\/)(?!.*\/\/)[A-Za-z0-9_+\-.][A-Za-z0-9_+\-./]{0,254}$/;

/** Why a path may not be part of a source, or null when it may. */
export function unsafePathReason(path: string): string | null {
  if (path.startsWith('/')) return 'an absolute path';
  if (path.split('/').some((s) => s === '..')) return "a path with '..'";
  if (path.split('/').some((s) => s === '.' || s === '')) return "a path with an empty or '.' segment";
  if (!SAFE_PATH.test(path)) return 'a path with characters other than letters, digits, _ + - . / (or longer than 255)';
  return null;
}

/** The globs of a manifest's text: one a line, blank lines and '#' comments ignored. */
export function parseBuildInputs(text: string, where: string): string[] {
  const globs: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    if (line.startsWith('/') || line.split('/').includes('..') || line.startsWith('!')) {
      throw new SourceError(`${where}: line ${i + 1}: "${line}": expected a glob relative to the source folder (no leading '/', no '..', no negation)`);
    }
    globs.push(line);
  });
  if (globs.length === 0) throw new SourceError(`${where}: names no build input`);
  return globs;
}

/** A test for relative paths: does the manifest (plus the manifest itself) name it? */
export function inputMatcher(globs: readonly string[]): (path: string) => boolean {
  const match = picomatch([...globs], { dot: false });
  return (path) => path === BUILD_INPUTS_FILE || match(path);
}

/** Canonical hash of a set of source files (see the file comment). */
export function hashSources(files: readonly SourceFile[]): string {
  const h = createHash('sha256');
  for (const f of sortFiles(files)) {
    h.update(`${f.path}\0${f.data.length}\0`);
    h.update(f.data);
  }
  return h.digest('hex');
}

export function sortFiles<T extends { path: string }>(files: readonly T[]): T[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function snapshotOf(files: readonly SourceFile[]): SourceSnapshot {
  const sorted = sortFiles(files);
  return { hash: hashSources(sorted), files: sorted, bytes: sorted.reduce((n, f) => n + f.data.length, 0) };
}

/**
 * The build inputs of a source folder, read now. The manifest is the folder's own
 * build-inputs.txt; `fallbackManifest` (the text of another one) serves a tree that has none.
 * A matched path that is a link or not a regular file is refused: a build never follows links.
 */
export function snapshotDir(dir: string, opts: { fallbackManifest?: string } = {}): SourceSnapshot {
  let manifest: string;
  try {
    manifest = readFileSync(join(dir, BUILD_INPUTS_FILE), 'utf8');
  } catch (err) {
    if (opts.fallbackManifest === undefined) {
      throw new SourceError(`${join(dir, BUILD_INPUTS_FILE)}: cannot read the build-input list (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    manifest = opts.fallbackManifest;
  }
  const globs = parseBuildInputs(manifest, join(dir, BUILD_INPUTS_FILE));
  const matches = inputMatcher(globs);
  const paths = new Set<string>();
  // Walk only the folders a glob can reach (its base), and below it only when the glob spans folders.
  for (const glob of [...globs, BUILD_INPUTS_FILE]) {
    const scan = picomatch.scan(glob);
    if (!scan.isGlob) {
      const parent = glob.includes('/') ? glob.slice(0, glob.lastIndexOf('/')) : '';
      walk(dir, parent, false, (p) => p === glob, paths);
      continue;
    }
    walk(dir, scan.base, scan.glob.includes('/') || scan.glob.includes('**'), matches, paths);
  }
  const files: SourceFile[] = [...paths].map((p) => ({ path: p, data: readFileSync(join(dir, p)) }));
  if (opts.fallbackManifest !== undefined && !paths.has(BUILD_INPUTS_FILE)) files.push({ path: BUILD_INPUTS_FILE, data: Buffer.from(manifest) });
  return snapshotOf(files);
}

function walk(root: string, rel: string, deep: boolean, matches: (p: string) => boolean, out: Set<string>): void {
  let entries;
  try {
    entries = readdirSync(join(root, rel), { withFileTypes: true });
  } catch {
    return; // a glob whose folder does not exist matches nothing
  }
  for (const e of entries) {
    const path = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) {
      if (deep && !e.name.startsWith('.')) walk(root, path, deep, matches, out);
      continue;
    }
    if (!matches(path)) continue;
    const st = lstatSync(join(root, path));
    if (!st.isFile()) throw new SourceError(`${join(root, path)}: a build input must be a regular file (this is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a file'})`);
    const why = unsafePathReason(path);
    if (why) throw new SourceError(`${join(root, path)}: cannot be a build input: ${why}`);
    out.add(path);
  }
}
