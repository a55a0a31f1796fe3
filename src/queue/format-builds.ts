/** What a submit says about each build of a sweep: its source hash, commit, dirty or not, flags, bundle size. */
import type { Plan } from '../sweep/expand.js';

export interface BuildReport {
  name: string;
  label: string;
  sourceHash: string | null;
  gitCommit: string | null;
  dirty: boolean;
  flags: string[];
  bundleBytes: number | null;
}

export function buildReports(plan: Plan): BuildReport[] {
  return plan.builds.map((b) => ({
    name: b.name,
    label: b.label,
    sourceHash: b.source.kind === 'bundle' ? b.source.hash : null,
    gitCommit: b.source.kind === 'bundle' ? b.source.meta.gitCommit : null,
    dirty: b.source.kind === 'bundle' ? b.source.meta.dirty : false,
    flags: b.flags,
    bundleBytes: b.source.kind === 'bundle' ? b.source.blob.length : null,
  }));
}

/** One line per build, for people: `build change: source 3f2a…  commit 1ac3483 + edits  (dir ./csrc), 41 KB`. */
export function formatBuilds(builds: readonly BuildReport[]): string {
  return builds
    .map((b) => {
      if (b.sourceHash === null) return `  ${b.label}`;
      const commit = b.gitCommit === null ? 'not in git' : `commit ${b.gitCommit.slice(0, 10)}${b.dirty ? ' + uncommitted edits (dirty)' : ''}`;
      return `  ${b.label}: source ${b.sourceHash.slice(0, 12)}, ${commit}${b.flags.length ? `, flags ${b.flags.join(' ')}` : ''}, bundle ${Math.ceil((b.bundleBytes ?? 0) / 1024)} KiB`;
    })
    .join('\n');
}
