/**
 * Bisection without measuring: where it looks next (search.ts, including
 * skipped commits and the end where only skipped ones are left), and the
 * CLI's refusals on a real git repository, each exit 2 before Redis or the
 * database is touched (REDIS_URL points where nothing listens: reaching for
 * it would exit 3).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { nextStep, type StepStatus } from '../../src/bisect/search.js';
import { tempRepo } from '../helpers/git-repo.js';
import { CLI, tempDir } from '../helpers/services.js';

const known = (entries: Array<[number, StepStatus]>) => new Map(entries);

describe('where a bisection looks next', () => {
  it('halves the range as git bisect does, passes over skipped commits, and says when only skipped ones are left', () => {
    // 7 commits after good (the last is bad): the middle first.
    expect(nextStep(7, known([[6, 'bad']]))).toEqual({ kind: 'measure', position: 2, left: 6 });
    expect(nextStep(7, known([[6, 'bad'], [2, 'good']]))).toEqual({ kind: 'measure', position: 4, left: 3 });
    // The middle skipped: its nearest neighbour, the lower one on a tie.
    expect(nextStep(7, known([[6, 'bad'], [2, 'good'], [4, 'skip']]))).toEqual({ kind: 'measure', position: 3, left: 2 });
    expect(nextStep(7, known([[6, 'bad'], [2, 'good'], [4, 'skip'], [3, 'bad']]))).toEqual({ kind: 'found', position: 3 });
    expect(nextStep(7, known([[6, 'bad'], [2, 'good'], [4, 'skip'], [3, 'good'], [5, 'good']]))).toEqual({ kind: 'found', position: 6 });
    expect(nextStep(7, known([[6, 'bad'], [2, 'good'], [3, 'good'], [4, 'skip'], [5, 'bad']]))).toEqual({ kind: 'ambiguous', positions: [4, 5] });
    expect(nextStep(1, known([[0, 'bad']]))).toEqual({ kind: 'found', position: 0 });
    // A bad commit found earlier than the last bounds the range.
    expect(nextStep(9, known([[8, 'bad'], [3, 'bad']]))).toEqual({ kind: 'measure', position: 1, left: 3 });
  });
});

describe('moefarm bisect refuses bad requests before touching a service', () => {
  const repo = tempRepo('bisect-usage');
  const t = tempDir('bisect-usage');
  afterAll(() => {
    repo.cleanup();
    t.cleanup();
  });
  repo.edit('src/cpu/oracle.cpp', (s) => `${s}// two\n`);
  const second = repo.commit('c2');
  const first = repo.git('rev-parse', 'HEAD~1');
  writeFileSync(join(repo.dir, 'b.yaml'), 'name: b\nmatrix:\n  variant: reference\n  model: tiny\n');
  writeFileSync(join(repo.dir, 'w.yaml'), 'name: w\nsource: worker\nmatrix:\n  variant: reference\n  model: tiny\n');
  const run = (args: string[]) =>
    execa(process.execPath, [CLI, 'bisect', '--source', 'csrc', ...args], {
      cwd: repo.dir,
      reject: false,
      env: { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: `file:${join(t.dir, 'never.db')}`, MOEFARM_PREFIX: 'never' },
    });

  it.each([
    [['--good', 'HEAD', '--bad', 'HEAD', '--sweep', 'b.yaml'], /--good HEAD and --bad HEAD are the same commit/],
    [['--good', second, '--bad', first, '--sweep', 'b.yaml'], /is not an ancestor of --bad/],
    [['--good', 'no-such-ref', '--bad', 'HEAD', '--sweep', 'b.yaml'], /--good no-such-ref: not a commit the repository at .* knows/],
    [['--good', 'HEAD~1', '--bad', 'HEAD', '--sweep', 'b.yaml', '--point', 'zzzzzz'], /--point zzzzzz: no point of b\.yaml has this hash/],
    [['--good', 'HEAD~1', '--bad', 'HEAD', '--sweep', 'w.yaml'], /w\.yaml: source: worker: bisect builds each commit's own source/],
    [['--good', 'HEAD~1', '--bad', 'HEAD', '--sweep', 'b.yaml', '--threshold', 'lots'], /expected a percentage/],
    [['--good', 'HEAD~1', '--bad', 'HEAD', '--sweep', 'b.yaml', '--unsure', 'bad'], /Allowed choices are good, skip/],
    [['--good', 'HEAD~1', '--sweep', 'b.yaml'], /required option '--bad <ref>' not specified/],
  ])('%j', async (args, message) => {
    const r = await run(args);
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(String(r.stderr)).toMatch(message);
    expect(String(r.stdout)).toBe('');
    expect(existsSync(join(t.dir, 'never.db'))).toBe(false);
  });
});
