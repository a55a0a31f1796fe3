/**
 * A build's source, read and described: its snapshot (the build inputs and
 * their hash) and what git says of it (commit, time, parents, generation,
 * dirty). `dir` sources are read from disk as they are; a folder inside a git
 * work tree is dirty when its build inputs differ from those at HEAD (notes
 * and CSVs do not count: they are not build inputs). `git` sources are read
 * from the object store at the commit a ref names, so a ref is exact.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { commitInfo, repoOf, snapshotCommit } from './git.js';
import { BUILD_INPUTS_FILE, SourceError, snapshotDir, type SourceSnapshot } from './inputs.js';

/** What the database keeps of a source (BuildSource) and a worker reports for its own checkout. */
export const SourceMetaSchema = z.strictObject({
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  gitCommit: z.string().regex(/^[0-9a-f]{40}$/).nullable(),
  commitTime: z.string().nullable(),
  parents: z.array(z.string().regex(/^[0-9a-f]{40}$/)),
  /** Commits reachable from gitCommit (itself included); null outside git. */
  generation: z.int().nonnegative().nullable(),
  /** Build inputs differ from those at gitCommit (edited, not committed). */
  dirty: z.boolean(),
  /** Where it came from, for people: "git origin/main", "dir ./csrc", "worker h1/h100/gpu0". */
  label: z.string().max(300),
});
export type SourceMeta = z.infer<typeof SourceMetaSchema>;

export interface DescribedSource {
  snapshot: SourceSnapshot;
  meta: SourceMeta;
}

/** The manifest text of a folder, if it has one (the fallback for refs older than the manifest). */
export function manifestOf(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, BUILD_INPUTS_FILE), 'utf8');
  } catch {
    return undefined;
  }
}

/** A folder as it is on disk; `fallbackManifest` serves a tree with no build-inputs.txt of its own (an export of an older commit). */
export function describeDir(dir: string, label: string, fallbackManifest?: string): DescribedSource {
  const abs = resolve(dir);
  const snapshot = snapshotDir(abs, fallbackManifest === undefined ? {} : { fallbackManifest });
  const repo = repoOf(abs);
  if (!repo) return { snapshot, meta: { hash: snapshot.hash, gitCommit: null, commitTime: null, parents: [], generation: null, dirty: false, label } };
  let head;
  try {
    head = commitInfo(repo.top, 'HEAD', abs);
  } catch {
    // A repository with no commit yet: everything is uncommitted.
    return { snapshot, meta: { hash: snapshot.hash, gitCommit: null, commitTime: null, parents: [], generation: null, dirty: true, label } };
  }
  const atHead = snapshotCommit(repo.top, head.commit, repo.prefix, { fallbackManifest: manifestOf(abs) ?? fallbackManifest ?? '', where: abs });
  return {
    snapshot,
    meta: { hash: snapshot.hash, gitCommit: head.commit, commitTime: head.time, parents: head.parents, generation: head.generation, dirty: atHead.hash !== snapshot.hash, label },
  };
}

/**
 * `ref` of the repository holding `sourceDir`, at the same folder. A tree from before the
 * build-input list existed is read with the list of `sourceDir`.
 */
export function describeGitRef(sourceDir: string, ref: string, label: string, where: string): DescribedSource {
  const abs = resolve(sourceDir);
  const repo = repoOf(abs);
  if (!repo) throw new SourceError(`${where}: git ref '${ref}' asked for, but ${abs} is not inside a git repository`);
  const c = commitInfo(repo.top, ref, where);
  const snapshot = snapshotCommit(repo.top, c.commit, repo.prefix, { fallbackManifest: manifestOf(abs) ?? '', where });
  return { snapshot, meta: { hash: snapshot.hash, gitCommit: c.commit, commitTime: c.time, parents: c.parents, generation: c.generation, dirty: false, label } };
}
