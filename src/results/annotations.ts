/**
 * Triage of history steps (`moefarm results annotate`). A step is keyed by
 * the build it steps *into* and the point it is seen at: (source hash,
 * Result.pointHash). The source hash is the build's identity (its build
 * inputs, BuildSource.hash), so the key survives rebases that do not touch
 * the kernel and is the same in every sweep that measured that source;
 * Result.pointHash is the point with its variant, the key history follows.
 *
 * - `expected`: the change is real and intended (a correctness fix, a
 *   trade-off). History keeps the step and marks it; the gate and the alerts
 *   no longer treat it as a regression.
 * - `invalid`: the build's measurements at that point are not to be trusted
 *   (a noisy host, a broken setup). History marks the build and leaves it out
 *   of step detection, so the next build is compared with the one before;
 *   the gate and the alerts ignore it too.
 */
import { execFileSync } from 'node:child_process';
import type { Db } from '../db/client.js';
import { storable } from '../db/text.js';
import { UsageError } from '../errors.js';
import { quoted } from '../util/terminal.js';

export const ANNOTATION_KINDS = ['expected', 'invalid'] as const;
export type AnnotationKind = (typeof ANNOTATION_KINDS)[number];

export interface StepAnnotation {
  sourceHash: string;
  pointHash: string;
  kind: AnnotationKind;
  note: string;
  gitCommit: string | null;
  updatedAt: string;
}

/** Longest note kept. */
export const MAX_NOTE_CHARS = 2000;

export function annotationKey(sourceHash: string, pointHash: string): string {
  return `${sourceHash}|${pointHash}`;
}

/** Annotations of these points (Result.pointHash, exact), by annotationKey. */
export async function loadAnnotations(db: Db, pointHashes: readonly string[]): Promise<Map<string, StepAnnotation>> {
  if (pointHashes.length === 0) return new Map();
  const rows = await db.annotation.findMany({ where: { pointHash: { in: [...new Set(pointHashes)] } } });
  return new Map(
    rows.map((r) => [
      annotationKey(r.sourceHash, r.pointHash),
      { sourceHash: r.sourceHash, pointHash: r.pointHash, kind: r.kind as AnnotationKind, note: r.note, gitCommit: r.gitCommit, updatedAt: r.updatedAt.toISOString() },
    ]),
  );
}

export interface AnnotateRequest {
  /** A source hash or git commit (a prefix of 6+ hex characters), or a git ref of the repository in `cwd`. */
  build: string;
  /** Result.pointHash, or a prefix of 6+ characters. */
  point: string;
  kind: AnnotationKind | 'clear';
  note?: string;
  /** Where a git ref is resolved (default: the current directory). */
  cwd?: string;
}

export interface AnnotateReport {
  action: 'annotated' | 'replaced' | 'cleared' | 'nothing-to-clear';
  sourceHash: string;
  pointHash: string;
  gitCommit: string | null;
  variant: string;
  kind: AnnotationKind | null;
  note: string | null;
  previous: { kind: string; note: string } | null;
}

export function checkNote(note: string | undefined, kind: AnnotateRequest['kind']): string | null {
  if (kind === 'clear') {
    if (note !== undefined) throw new UsageError('--note: not with --clear (clearing removes the note)');
    return null;
  }
  if (note === undefined || note.trim() === '') throw new UsageError('--note: expected a note saying why (for example "accepted: the fix for issue 7 costs 4%")');
  if (note.length > MAX_NOTE_CHARS) throw new UsageError(`--note: at most ${MAX_NOTE_CHARS} characters, got ${note.length}`);
  if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(note)) throw new UsageError('--note: control characters are not allowed in a note');
  return note;
}

/**
 * Resolves the step (build, point) among the results that exist and writes (or clears) its annotation.
 * A usage error when the build or point is unknown or ambiguous, naming the candidates.
 */
export async function annotateStep(db: Db, req: AnnotateRequest): Promise<AnnotateReport> {
  const note = checkNote(req.note, req.kind);
  if (!/^[A-Za-z0-9]{6,64}$/.test(req.point)) throw new UsageError(`--point: expected a point hash (6 or more letters or digits, see results history), got ${quoted(req.point)}`);
  const results = await db.result.findMany({
    where: { pointHash: { startsWith: req.point }, run: { status: 'done' } },
    select: { pointHash: true, sourceHash: true, gitCommit: true, variant: true },
    distinct: ['pointHash', 'sourceHash'],
  });
  const points = [...new Set(results.map((r) => r.pointHash))];
  if (points.length === 0) {
    const group = await db.run.findFirst({ where: { groupHash: { startsWith: req.point } }, select: { groupHash: true, id: true } });
    throw new UsageError(
      group
        ? `--point ${req.point}: that is a run's group hash (a job of several variants or builds); annotate the point of one variant: its hash is in results history --point ${req.point}`
        : `--point ${req.point}: no result has this point hash (see results history or results compare --json)`,
    );
  }
  if (points.length > 1) throw new UsageError(`--point ${req.point}: matches ${points.length} points (${points.slice(0, 5).join(', ')}); give more characters`);
  const pointHash = points[0]!;
  const sources = await db.buildSource.findMany({ where: { hash: { in: results.map((r) => r.sourceHash) } }, select: { hash: true, gitCommit: true, dirty: true } });
  const srcOf = new Map(sources.map((s) => [s.hash, s]));
  const builds = results.map((r) => ({ sourceHash: r.sourceHash, gitCommit: srcOf.get(r.sourceHash)?.gitCommit ?? r.gitCommit, dirty: srcOf.get(r.sourceHash)?.dirty ?? false, variant: r.variant }));
  const byPrefix = (x: string) => builds.filter((b) => b.sourceHash.startsWith(x) || (b.gitCommit !== null && b.gitCommit.startsWith(x)));
  let match = /^[0-9a-f]{6,64}$/.test(req.build) ? byPrefix(req.build) : [];
  if (match.length === 0) {
    const commit = resolveRef(req.build, req.cwd ?? process.cwd());
    if (commit) match = builds.filter((b) => b.gitCommit === commit);
  }
  const known = builds.map((b) => `${b.sourceHash.slice(0, 12)}${b.gitCommit ? ` (commit ${b.gitCommit.slice(0, 10)}${b.dirty ? ', dirty' : ''})` : ''}`).join(', ');
  if (match.length === 0) throw new UsageError(`--build ${quoted(req.build)}: no build of point ${pointHash} has this source hash or commit (its builds: ${known})`);
  if (match.length > 1) {
    throw new UsageError(`--build ${quoted(req.build)}: matches ${match.length} builds of point ${pointHash} (${match.map((b) => `${b.sourceHash.slice(0, 12)}${b.dirty ? ' dirty' : ''}`).join(', ')}); give the source hash`);
  }
  const b = match[0]!;
  const key = { sourceHash_pointHash: { sourceHash: b.sourceHash, pointHash } };
  const before = await db.annotation.findUnique({ where: key });
  const base = { sourceHash: b.sourceHash, pointHash, gitCommit: b.gitCommit, variant: b.variant, previous: before ? { kind: before.kind, note: before.note } : null };
  if (req.kind === 'clear') {
    if (before) await db.annotation.delete({ where: key });
    return { ...base, action: before ? 'cleared' : 'nothing-to-clear', kind: null, note: null };
  }
  const text = storable(note!);
  await db.annotation.upsert({
    where: key,
    create: { sourceHash: b.sourceHash, pointHash, kind: req.kind, note: text, gitCommit: b.gitCommit },
    update: { kind: req.kind, note: text, gitCommit: b.gitCommit },
  });
  return { ...base, action: before ? 'replaced' : 'annotated', kind: req.kind, note: text };
}

/** A git ref of the repository in `cwd`, as a full commit id; null when there is none. */
function resolveRef(ref: string, cwd: string): string | null {
  if (!/^(?!-)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/~^@{}+-]{0,199}$/.test(ref)) return null;
  try {
    return execFileSync('git', ['-C', cwd, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || null;
  } catch {
    return null;
  }
}
