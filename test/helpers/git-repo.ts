/**
 * Real git repositories in temporary folders, holding a copy of this
 * checkout's csrc/ (its build inputs and notes), for tests of sources that
 * travel with a sweep: commits, refs, dirty trees.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, tempDir } from './services.js';

export interface TempRepo {
  dir: string;
  csrc: string;
  git: (...args: string[]) => string;
  /** Commits everything with this message; returns the commit id. */
  commit: (message: string) => string;
  /** Rewrites a file under csrc/ through `edit`. */
  edit: (path: string, edit: (text: string) => string) => void;
  cleanup: () => void;
}

export function tempRepo(tag: string): TempRepo {
  const t = tempDir(tag);
  const csrc = join(t.dir, 'csrc');
  cpSync(join(ROOT, 'csrc'), csrc, { recursive: true, filter: (src) => !/[\\/]csrc[\\/]build([\\/]|$)/.test(src) });
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', t.dir, ...args], {
      encoding: 'utf8',
      env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.invalid' },
    }).trim();
  git('init', '-q', '-b', 'main');
  const commit = (message: string) => {
    git('add', '-A');
    git('commit', '-q', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  commit('initial: csrc as in the checkout');
  return {
    dir: t.dir,
    csrc,
    git,
    commit,
    edit: (path, f) => writeFileSync(join(csrc, path), f(readFileSync(join(csrc, path), 'utf8'))),
    cleanup: t.cleanup,
  };
}

/** The CPU kernel made to do the `reference` variant's work twice per iteration: a real, committed slowdown. */
export function doubleReferenceWork(text: string): string {
  const call = /forward_reference\(([^;{}]*)\);/;
  const m = call.exec(text);
  if (!m) throw new Error('cpu/variants.cpp: no call of forward_reference(...) to double');
  return text.replace(call, `{ forward_reference(${m[1]}); forward_reference(${m[1]}); }`);
}

/**
 * A sweep of the `reference` variant measured so that doubleReferenceWork reads as SLOWER even on a loaded
 * 2-core machine: 6 rounds, 2 runs, 30 timed iterations of the tiny model at one token. `more` holds the
 * test's own top-level keys (interleave, builds, baseline).
 */
export function referenceSweep(name: string, pool: string, more = ''): string {
  return `name: ${name}\npool: ${pool}\n${more}rounds: 6\nrepeat: 2\nmatrix:\n  variant: reference\n  model: tiny\n  tokens: 1\n  warmup: 3\n  iters: 30\n`;
}
