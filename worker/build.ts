/**
 * Builds the native binary from csrc/ into a content-addressed cache.
 *
 * Key = sha256(source files, compiler version, backend, arch, extra flags).
 * A key already in the cache is used as is (no rebuild). A build happens in a
 * private temporary folder — the sources are copied there first, so the
 * binary matches the hash even if csrc/ changes meanwhile — and is published
 * with one atomic rename: two workers building the same key never see a
 * half-written binary; the loser of the race discards its copy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { BuildInfoSchema, type BuildInfo } from '../src/schema/job.js';
import { canonicalJson, sha256 } from '../src/util/hash.js';
import { PermanentRunError } from './errors.js';

export type BuildBackend = 'cpu' | 'cuda';

export interface BuildRequest {
  csrc: string;
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

/** Files that are part of the build: sources and the Makefile, not notes, not build output. */
async function listSources(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name === 'build' || e.name.startsWith('.')) continue;
        await walk(full);
      } else if (e.isFile() && !/\.(md|txt|json|log|sh)$/i.test(e.name)) {
        out.push(full);
      }
    }
  }
  await walk(dir);
  return out.sort();
}

export async function sourceHash(csrc: string): Promise<{ hash: string; files: string[] }> {
  const files = await listSources(csrc);
  const h = createHash('sha256');
  for (const f of files) {
    h.update(relative(csrc, f) + '\0');
    h.update(await readFile(f));
    h.update('\0');
  }
  return { hash: h.digest('hex'), files };
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

async function gitCommit(csrc: string): Promise<string | null> {
  const head = await execa('git', ['-C', csrc, 'rev-parse', 'HEAD'], { reject: false });
  if (head.exitCode !== 0) return null;
  const dirty = await execa('git', ['-C', csrc, 'status', '--porcelain', '--', '.'], { reject: false });
  return head.stdout.trim() + (dirty.stdout.trim() ? '-dirty' : '');
}

export function buildKey(parts: { sourceHash: string; compiler: string; backend: string; arch: string; extraFlags: string[] }): string {
  return sha256(canonicalJson(parts)).slice(0, 24);
}

export async function ensureBinary(req: BuildRequest): Promise<BuiltBinary> {
  const t0 = performance.now();
  const extraFlags = req.extraFlags ?? [];
  const arch = req.backend === 'cpu' ? process.arch : req.arch;
  const [{ hash, files }, compiler] = await Promise.all([sourceHash(req.csrc), compilerVersion(req.backend)]);
  const key = buildKey({ sourceHash: hash, compiler, backend: req.backend, arch, extraFlags });
  const root = join(req.cache, 'builds');
  const final = join(root, key);
  const binary = join(final, 'moe-bench');
  if (existsSync(binary) && existsSync(join(final, 'build.json'))) {
    const info = BuildInfoSchema.parse(JSON.parse(await readFile(join(final, 'build.json'), 'utf8')));
    return { path: binary, info, cached: true, ms: performance.now() - t0 };
  }
  await mkdir(root, { recursive: true });
  const tmp = join(root, `.tmp-${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const src = join(tmp, 'src');
    for (const f of files) {
      const dest = join(src, relative(req.csrc, f));
      await mkdir(join(dest, '..'), { recursive: true });
      await cp(f, dest, { preserveTimestamps: true });
    }
    const commit = await gitCommit(req.csrc);
    const makeArgs = [
      '-C', src, req.backend,
      `BUILD=${tmp}`,
      `SOURCE_HASH=${hash.slice(0, 16)}`,
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
      sourceHash: hash.slice(0, 16),
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
