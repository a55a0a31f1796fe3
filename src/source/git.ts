/**
 * What git knows about a source: the commit, its time, parents and generation
 * (commits reachable from it), and the build inputs of a folder at any ref the
 * repository knows. Plain `git` with argument arrays (never a shell), run
 * synchronously: a submit asks a handful of questions of a local repository.
 */
import { execFileSync } from 'node:child_process';
import { relative, resolve } from 'node:path';
import { BUILD_INPUTS_FILE, SourceError, inputMatcher, parseBuildInputs, snapshotOf, unsafePathReason, type SourceFile, type SourceSnapshot } from './inputs.js';

export interface CommitInfo {
  commit: string;
  /** Committer time, ISO 8601. */
  time: string;
  parents: string[];
  /** Commits reachable from this one, itself included: an ancestor always has a smaller number. */
  generation: number;
}

const MAX_OUTPUT = 256 * 1024 * 1024;

function git(cwd: string, args: string[], input?: Buffer): Buffer {
  return execFileSync('git', ['-C', cwd, ...args], { maxBuffer: MAX_OUTPUT, stdio: ['pipe', 'pipe', 'pipe'], ...(input ? { input } : {}) });
}

function gitText(cwd: string, args: string[]): string | null {
  try {
    return git(cwd, args).toString('utf8').trim();
  } catch {
    return null;
  }
}

/** The repository holding `dir` and the folder's path inside it ('' at the top), or null outside git. */
export function repoOf(dir: string): { top: string; prefix: string } | null {
  const top = gitText(dir, ['rev-parse', '--show-toplevel']);
  if (top === null || top === '') return null;
  const prefix = relative(top, resolve(dir)).split('\\').join('/');
  return { top, prefix };
}

/** Commit a ref names, with its time, parents and generation; a clear error when the repository does not know it. */
export function commitInfo(repo: string, ref: string, where: string): CommitInfo {
  const out = gitText(repo, ['show', '-s', '--format=%H%n%cI%n%P', '--end-of-options', `${ref}^{commit}`]);
  if (out === null) throw new SourceError(`${where}: git ref '${ref}' is not a commit the repository at ${repo} knows`);
  const [commit = '', time = '', parents = ''] = out.split('\n');
  const count = gitText(repo, ['rev-list', '--count', commit]);
  return { commit, time, parents: parents.split(' ').filter(Boolean), generation: Number(count ?? 0) };
}

/**
 * The build inputs of folder `prefix` at `commit`: the manifest of that tree (or `fallbackManifest`
 * for a tree from before the manifest existed, which then travels in the bundle), its files read
 * from the object store. A matched link or submodule is refused, as it is in a folder.
 */
export function snapshotCommit(repo: string, commit: string, prefix: string, opts: { fallbackManifest: string; where: string }): SourceSnapshot {
  const base = prefix === '' ? '' : `${prefix}/`;
  const listing = git(repo, ['ls-tree', '-r', '-z', '--full-tree', commit, '--', prefix === '' ? '.' : prefix]).toString('utf8');
  const entries = new Map<string, { mode: string; type: string; oid: string }>();
  for (const rec of listing.split('\0')) {
    if (!rec) continue;
    const tab = rec.indexOf('\t');
    const [mode = '', type = '', oid = ''] = rec.slice(0, tab).split(' ');
    const full = rec.slice(tab + 1);
    if (!full.startsWith(base)) continue;
    entries.set(full.slice(base.length), { mode, type, oid });
  }
  const manifestEntry = entries.get(BUILD_INPUTS_FILE);
  const manifest = manifestEntry ? readBlobs(repo, [manifestEntry.oid])[0]!.toString('utf8') : opts.fallbackManifest;
  const matches = inputMatcher(parseBuildInputs(manifest, `${opts.where}: ${base}${BUILD_INPUTS_FILE}`));
  const picked: Array<{ path: string; oid: string }> = [];
  for (const [path, e] of entries) {
    if (!matches(path)) continue;
    if (e.type !== 'blob' || e.mode === '120000') {
      throw new SourceError(`${opts.where}: ${base}${path} at ${commit.slice(0, 12)} is ${e.mode === '120000' ? 'a symbolic link' : `a ${e.type}`}; a build input must be a regular file`);
    }
    const why = unsafePathReason(path);
    if (why) throw new SourceError(`${opts.where}: ${base}${path} cannot be a build input: ${why}`);
    picked.push({ path, oid: e.oid });
  }
  const blobs = readBlobs(repo, picked.map((p) => p.oid));
  const files: SourceFile[] = picked.map((p, i) => ({ path: p.path, data: blobs[i]! }));
  if (!manifestEntry) files.push({ path: BUILD_INPUTS_FILE, data: Buffer.from(manifest) });
  return snapshotOf(files);
}

/** Contents of blobs by object id, in order, through one `git cat-file --batch`. */
function readBlobs(repo: string, oids: string[]): Buffer[] {
  if (oids.length === 0) return [];
  const out = git(repo, ['cat-file', '--batch'], Buffer.from(oids.join('\n') + '\n'));
  const blobs: Buffer[] = [];
  let at = 0;
  for (const oid of oids) {
    const nl = out.indexOf(0x0a, at);
    const header = out.subarray(at, nl).toString('utf8');
    const [got, type, size] = header.split(' ');
    if (got !== oid || type !== 'blob') throw new SourceError(`git cat-file: expected blob ${oid}, got "${header}"`);
    const n = Number(size);
    blobs.push(Buffer.from(out.subarray(nl + 1, nl + 1 + n)));
    at = nl + 1 + n + 1;
  }
  return blobs;
}
