/**
 * Builds the native binary from csrc/ into a content-addressed cache.
 *
 * Key = sha256(source hash, compiler version, backend, arch, extra flags),
 * where the source hash covers exactly the build inputs that
 * csrc/build-inputs.txt names (src/source/inputs.ts).
 * A key already in the cache is used as is (no rebuild). A build happens in a
 * private temporary folder — the hashed files are written there first, so
 * the binary matches the hash even if csrc/ changes meanwhile — and is published
 * with one atomic rename: two workers building the same key never see a
 * half-written binary; the loser of the race discards its copy.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { BuildInfoSchema, type BuildInfo } from '../src/schema/job.js';
import { describeDir } from '../src/source/describe.js';
import { snapshotDir, type SourceSnapshot } from '../src/source/inputs.js';
import { canonicalJson, sha256 } from '../src/util/hash.js';
import { PermanentRunError } from './errors.js';

export type BuildBackend = 'cpu' | 'cuda';

export interface BuildRequest {
  /** A source folder (read now), or `source`. */
  csrc?: string;
  source?: BuildSource;
  cache: string;
  backend: BuildBackend;
  /** cuda: sm_90a | sm_89 | sm_80; cpu: ignored (host arch). */
  arch: string;
  /** Extra compiler flags (already checked against the allow-list). */
  extraFlags?: string[];
}

export interface BuiltBinary {
  path: string;
  info: BuildInfo;
  cached: boolean;
  ms: number;
}

/**
 * The source of a build: its hash, and how to get its files when the cache does not hold the build
 * already (a bundle is fetched and verified only then: a cached build of the same hash was made from
 * verified files with that hash).
 */
export interface BuildSource {
  hash: string;
  /** The files, and the commit the binary reports (hex, "-dirty" when edited; null when not known). */
  load: () => Promise<{ snapshot: SourceSnapshot; gitCommit: string | null }>;
}

/** A source folder: its build inputs (csrc/build-inputs.txt) hashed now; git asked only if a build is needed. */
export function folderSource(csrc: string): BuildSource {
  return {
    hash: snapshotDir(csrc).hash,
    load: async () => {
      const { snapshot, meta } = describeDir(csrc, `dir ${csrc}`);
      return { snapshot, gitCommit: meta.gitCommit === null ? null : meta.gitCommit + (meta.dirty ? '-dirty' : '') };
    },
  };
}

/** The source hash of a folder's build inputs. */
export function sourceHash(csrc: string): string {
  return snapshotDir(csrc).hash;
}

const compilerCache = new Map<BuildBackend, Promise<string>>();

/** Compiler identity, e.g. "g++ (Debian 12.2.0-14) 12.2.0" or "nvcc cuda_13.0.r13.0/compiler.36424714_0". */
export function compilerVersion(backend: BuildBackend): Promise<string> {
  let p = compilerCache.get(backend);
  if (!p) {
    p = (async () => {
      if (backend === 'cpu') {
        const r = await execa('g++', ['--version']);
        return r.stdout.split('\n')[0] ?? 'g++ unknown';
      }
      const r = await execa('nvcc', ['--version']);
      const line = r.stdout.split('\n').find((l) => l.startsWith('Build ')) ?? r.stdout.split('\n').at(-1) ?? 'unknown';
      return `nvcc ${line.replace(/^Build /, '')}`;
    })();
    compilerCache.set(backend, p);
    p.catch(() => compilerCache.delete(backend));
  }
  return p;
}

export function buildKey(parts: { sourceHash: string; compiler: string; backend: string; arch: string; extraFlags: string[] }): string {
  return sha256(canonicalJson(parts)).slice(0, 24);
}

export async function ensureBinary(req: BuildRequest): Promise<BuiltBinary> {
  const t0 = performance.now();
  const extraFlags = req.extraFlags ?? [];
  const arch = req.backend === 'cpu' ? process.arch : req.arch;
  const source = req.source ?? (req.csrc !== undefined ? folderSource(req.csrc) : null);
  if (!source) throw new Error('ensureBinary: a source folder or a source is needed');
  const hash = source.hash;
  const compiler = await compilerVersion(req.backend);
  const key = buildKey({ sourceHash: hash, compiler, backend: req.backend, arch, extraFlags });
  const root = join(req.cache, 'builds');
  const final = join(root, key);
  const binary = join(final, 'moe-bench');
  if (existsSync(binary) && existsSync(join(final, 'build.json'))) {
    const info = BuildInfoSchema.parse(JSON.parse(await readFile(join(final, 'build.json'), 'utf8')));
    return { path: binary, info, cached: true, ms: performance.now() - t0 };
  }
  const { snapshot, gitCommit: commit } = await source.load();
  if (snapshot.hash !== hash) throw new Error(`source changed while building: ${snapshot.hash} is not ${hash}`);
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.tmp-${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    // Only the build inputs, from the snapshot: the binary is made of exactly the files that were hashed.
    const src = join(tmp, 'src');
    for (const f of snapshot.files) {
      const dest = join(src, f.path);
      await mkdir(dirname(dest), { recursive: true });
      await writeFile(dest, f.data);
    }
    const makeArgs = [
      '-C', src, req.backend,
      `BUILD=${tmp}`,
      `SOURCE_HASH=${hash}`,
      `GIT_COMMIT=${commit ?? ''}`,
      `CXXFLAGS_EXTRA=${extraFlags.join(' ')}`,
    ];
    if (req.backend === 'cuda') makeArgs.push(`ARCH=${req.arch}`);
    const made = await execa('make', makeArgs, { reject: false, all: true, env: { MAKEFLAGS: '' } });
    if (made.exitCode !== 0 || !existsSync(join(tmp, 'moe-bench'))) {
      throw new PermanentRunError('compile-error', `build of ${req.backend} binary failed (make exit ${made.exitCode})`, null, tail(made.all ?? ''));
    }
    const flags = await execa('make', ['-s', '-C', src, 'print-flags', ...(req.backend === 'cuda' ? [`ARCH=${req.arch}`] : []), `CXXFLAGS_EXTRA=${extraFlags.join(' ')}`], { reject: false });
    const info: BuildInfo = {
      key,
      backend: req.backend,
      sourceHash: hash,
      gitCommit: commit,
      compiler,
      flags: flags.stdout.split('\n').find((l) => l.startsWith(`${req.backend}: `))?.slice(req.backend.length + 2).trim() ?? extraFlags.join(' '),
      arch,
    };
    await writeFile(join(tmp, 'build.json'), JSON.stringify(info, null, 2));
    await rm(src, { recursive: true, force: true });
    try {
      await rename(tmp, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another worker published the same key first: theirs is identical by construction.
      await rm(tmp, { recursive: true, force: true });
      const theirs = BuildInfoSchema.parse(JSON.parse(await readFile(join(final, 'build.json'), 'utf8')));
      return { path: binary, info: theirs, cached: true, ms: performance.now() - t0 };
    }
    return { path: binary, info, cached: false, ms: performance.now() - t0 };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

export function tail(text: string, max = 16 * 1024): string {
  return text.length > max ? '…' + text.slice(-max) : text;
}
