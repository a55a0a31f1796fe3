/**
 * A bisection, step by step, with its state in the database (tables Bisect
 * and BisectStep, migration 004): the commits between good and bad are
 * listed once, each step's commit, sweep and outcome recorded as it starts
 * and as it ends. Its id is a hash of what it asks (good and bad commits,
 * the sweep, the point, the threshold and the UNSURE rule), so running the
 * same command again resumes it: recorded outcomes are reused, a step cut
 * short is submitted again (the same sweep id: nothing finished is run
 * again) and waited for.
 *
 * First the bad commit itself is measured against good: a bisection of a
 * range whose ends do not differ would only wander.
 */
import { execFileSync } from 'node:child_process';
import type { Redis } from 'ioredis';
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { submitPlan } from '../queue/submit.js';
import { untilConfident } from '../results/adaptive.js';
import { compareSweep, type Comparison } from '../results/compare.js';
import { loadSweepResults } from '../results/load.js';
import type { Sweep } from '../schema/sweep.js';
import { SourceError } from '../source/inputs.js';
import { planSweep, type Plan } from '../sweep/expand.js';
import { canonicalJson, contentHash } from '../util/hash.js';
import { nextStep, type StepStatus } from './search.js';
import { classify, narrowToPoint, stepSweep, type StepVerdict, type UnsureAs } from './step.js';

export interface BisectRequest {
  goodRef: string;
  badRef: string;
  sweep: Sweep;
  sweepFile: string;
  /** The kernel source folder (its repository holds the commits). */
  sourceDir: string;
  point: string | null;
  thresholdPct: number;
  unsure: UnsureAs;
  /** Extra runs per step for UNSURE comparisons (default: the step sweep's run count). */
  budget: number | null;
  restart: boolean;
}

export interface BisectContext {
  db: Db;
  redis: Redis;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface CommitRef {
  commit: string;
  subject: string;
}

export interface StepRecord extends StepVerdict {
  seq: number;
  commit: string;
  subject: string;
  /** Index in `commits` (the bad commit is the last). */
  position: number;
  sweepId: string | null;
  sourceHash: string | null;
  /** How it was decided: measured, or taken from identical build inputs without measuring. */
  measured: boolean;
}

export interface BisectOutcome {
  bisectId: string;
  resumed: number;
  good: CommitRef;
  bad: CommitRef;
  commits: CommitRef[];
  status: 'found' | 'ambiguous' | 'no-regression' | 'failed';
  firstBad: CommitRef | null;
  /** With skipped commits between the last good and the first bad: every commit that may be the first slower one. */
  candidates: CommitRef[];
  /** Steps in the order taken; the first is the bad commit against good. */
  steps: StepRecord[];
  /** Bisection steps after the check of the bad commit. */
  bisectSteps: number;
  message: string;
  /** The comparison of the deciding step (the first slower commit against good), when it was measured. */
  evidence: Comparison | null;
}

function git(repo: string, args: string[]): string {
  try {
    return execFileSync('git', ['-C', repo, ...args], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 }).toString('utf8').trim();
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString('utf8').trim();
    throw new UsageError(`git ${args.join(' ')} in ${repo}: ${stderr || (err as Error).message}`);
  }
}

function resolveCommit(repo: string, ref: string, flag: string): string {
  if (!/^(?!-)(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/~^@{}+-]{0,199}$/.test(ref)) throw new UsageError(`${flag}: expected a git ref (HEAD~3, v1.2, a commit id), got "${ref}"`);
  try {
    return execFileSync('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    throw new UsageError(`${flag} ${ref}: not a commit the repository at ${repo} knows`);
  }
}

function subjectOf(repo: string, commit: string): string {
  return git(repo, ['log', '-1', '--format=%s', commit]);
}

/** The repository holding the source folder, and the commits good..bad on bad's first-parent chain, oldest first. */
export function bisectRange(sourceDir: string, goodRef: string, badRef: string): { repo: string; good: CommitRef; bad: CommitRef; commits: CommitRef[] } {
  let repo: string;
  try {
    repo = execFileSync('git', ['-C', sourceDir, 'rev-parse', '--show-toplevel'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    throw new UsageError(`bisect: ${sourceDir} is not inside a git repository (--source names the kernel source folder of one)`);
  }
  const good = resolveCommit(repo, goodRef, '--good');
  const bad = resolveCommit(repo, badRef, '--bad');
  if (good === bad) throw new UsageError(`--good ${goodRef} and --bad ${badRef} are the same commit (${good.slice(0, 10)}): nothing to bisect`);
  try {
    execFileSync('git', ['-C', repo, 'merge-base', '--is-ancestor', good, bad], { stdio: 'ignore' });
  } catch {
    throw new UsageError(`--good ${goodRef} (${good.slice(0, 10)}) is not an ancestor of --bad ${badRef} (${bad.slice(0, 10)}): bisect looks for the commit that made bad slower than good, so good must come first`);
  }
  const list = git(repo, ['rev-list', '--first-parent', '--reverse', `${good}..${bad}`]).split('\n').filter(Boolean);
  if (list.at(-1) !== bad) throw new UsageError(`bisect: the first-parent chain of ${bad.slice(0, 10)} does not end at it (git rev-list said otherwise)`);
  const ref = (c: string): CommitRef => ({ commit: c, subject: subjectOf(repo, c) });
  return { repo, good: ref(good), bad: ref(bad), commits: list.map(ref) };
}

/** What a bisect asks, resolved: the range, its id, and the plan of its first step. */
export interface PreparedBisect {
  repo: string;
  good: CommitRef;
  bad: CommitRef;
  commits: CommitRef[];
  settings: { thresholdPct: number; unsure: UnsureAs; point: string | null; source: string };
  bisectId: string;
  planOf: (commit: string) => Plan;
  badPlan: Plan;
}

/**
 * Everything a bisect can refuse, refused before any service is opened: refs, ancestry, the sweep
 * planned for the bad commit (bundling both sources, checking every point, the --point).
 */
export function prepareBisect(req: BisectRequest): PreparedBisect {
  const { repo, good, bad, commits } = bisectRange(req.sourceDir, req.goodRef, req.badRef);
  const prefix = git(req.sourceDir, ['rev-parse', '--show-prefix']).replace(/\/$/, '');
  const settings = { thresholdPct: req.thresholdPct, unsure: req.unsure, point: req.point, source: prefix };
  const bisectId = 'b' + contentHash({ good: good.commit, bad: bad.commit, sweep: req.sweep, settings }, 12);
  const planOf = (commit: string): Plan => {
    let sweep = stepSweep(req.sweep, good.commit, commit);
    if (req.point !== null) sweep = narrowToPoint(sweep, planSweep(sweep, { file: req.sweepFile, sourceDir: req.sourceDir }), req.point, req.sweepFile);
    return planSweep(sweep, { file: req.sweepFile, sourceDir: req.sourceDir });
  };
  return { repo, good, bad, commits, settings, bisectId, planOf, badPlan: planOf(bad.commit) };
}

export async function runBisect(ctx: BisectContext, req: BisectRequest, prepared: PreparedBisect = prepareBisect(req)): Promise<BisectOutcome> {
  const { db, log } = ctx;
  const { repo, good, bad, commits, settings, bisectId, planOf, badPlan } = prepared;
  const label = `bisect:${bisectId}`;

  if (req.restart) await db.bisect.deleteMany({ where: { id: bisectId } });
  const existing = await db.bisect.findUnique({ where: { id: bisectId }, include: { steps: true } });
  if (!existing) {
    await db.bisect.create({
      data: {
        id: bisectId,
        repo,
        sweepFile: req.sweepFile,
        spec: canonicalJson(req.sweep),
        goodRef: req.goodRef,
        badRef: req.badRef,
        goodCommit: good.commit,
        badCommit: bad.commit,
        point: req.point,
        settings: canonicalJson(settings),
        commits: JSON.stringify(commits.map((c) => c.commit)),
        status: 'running',
      },
    });
  }
  const recorded = existing?.steps.filter((s) => s.status !== 'running').length ?? 0;
  log(
    `bisect ${bisectId}: ${commits.length} commit(s) after good ${good.commit.slice(0, 10)} up to bad ${bad.commit.slice(0, 10)} ` +
      `(first-parent); at most about ${Math.ceil(Math.log2(Math.max(commits.length, 2)))} step(s) after checking bad` +
      (existing ? `; resuming: ${recorded} step(s) already recorded` : ''),
  );
  const subjectByCommit = new Map(commits.map((c) => [c.commit, c.subject]));
  const steps: StepRecord[] = (existing?.steps ?? [])
    .filter((s) => s.status !== 'running')
    .sort((a, b) => a.seq - b.seq)
    .map((s) => ({
      seq: s.seq,
      commit: s.commit,
      subject: subjectByCommit.get(s.commit) ?? '',
      position: s.position,
      sweepId: s.sweepId,
      sourceHash: s.sourceHash,
      measured: s.sweepId !== null,
      status: s.status as StepStatus,
      verdict: s.verdict as StepRecord['verdict'],
      speedup: s.speedup,
      ciLo: s.ciLo,
      ciHi: s.ciHi,
      reason: s.reason ?? '',
    }));
  let seq = Math.max(0, ...(existing?.steps ?? []).map((s) => s.seq));

  const takeStep = async (position: number, plan: Plan | null): Promise<StepRecord> => {
    const c = commits[position]!;
    const done = steps.find((s) => s.commit === c.commit);
    if (done) return done;
    const stepId = `${bisectId}/${c.commit}`;
    const prior = await db.bisectStep.findUnique({ where: { id: stepId } });
    const mySeq = prior?.seq ?? ++seq;
    const head = `step ${mySeq === 1 ? '0 (the bad commit against good)' : mySeq - 1}: commit ${c.commit.slice(0, 10)} "${c.subject}" (${position + 1} of ${commits.length})`;
    let record: StepRecord;
    try {
      plan ??= planOf(c.commit);
    } catch (err) {
      if (!(err instanceof UsageError) && !(err instanceof SourceError)) throw err;
      record = { seq: mySeq, commit: c.commit, subject: c.subject, position, sweepId: null, sourceHash: null, measured: false, status: 'skip', verdict: null, speedup: null, ciLo: null, ciHi: null, reason: `cannot be submitted: ${(err as Error).message}` };
      await saveStep(db, bisectId, record);
      log(`${head}: skip, ${record.reason}`);
      steps.push(record);
      return record;
    }
    const goodHash = sourceHashOf(plan, 0);
    const hash = sourceHashOf(plan, 1);
    const twin = steps.find((s) => s.sourceHash === hash && s.status !== 'skip');
    if (hash !== null && (hash === goodHash || twin)) {
      const same = hash === goodHash ? { status: 'good' as const, what: `good (${good.commit.slice(0, 10)})` } : { status: twin!.status, what: `commit ${twin!.commit.slice(0, 10)}` };
      record = {
        seq: mySeq, commit: c.commit, subject: c.subject, position, sweepId: null, sourceHash: hash, measured: false,
        status: same.status, verdict: null, speedup: null, ciLo: null, ciHi: null,
        reason: `the same build inputs as ${same.what} (source ${hash.slice(0, 12)}): the same binary, nothing to measure`,
      };
      await saveStep(db, bisectId, record);
      log(`${head}: ${record.status}, ${record.reason}`);
      steps.push(record);
      return record;
    }
    await db.bisectStep.upsert({
      where: { id: stepId },
      create: { id: stepId, bisectId, commit: c.commit, position, seq: mySeq, sweepId: plan.sweepId, sourceHash: hash, status: 'running' },
      update: { sweepId: plan.sweepId, sourceHash: hash, status: 'running' },
    });
    log(`${head}: sweep ${plan.sweepId}${prior ? ' (resumed)' : ''}`);
    await submitPlan(db, ctx.redis, plan, req.sweepFile, { label });
    const budget = req.budget ?? plan.runs.length;
    await untilConfident(db, ctx.redis, plan, { budget, log: (l) => log(`  ${l}`), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    const results = await loadSweepResults(db, plan.sweepId);
    const cmp = compareSweep(results, null);
    const failedRun = Object.keys(results.failures).length
      ? await db.run.findFirst({ where: { sweepId: plan.sweepId, status: { notIn: ['done', 'queued'] } }, select: { reason: true } })
      : null;
    const v = classify(cmp, results, { thresholdPct: req.thresholdPct, unsure: req.unsure, failedReason: failedRun?.reason ?? null });
    record = { seq: mySeq, commit: c.commit, subject: c.subject, position, sweepId: plan.sweepId, sourceHash: hash, measured: true, ...v };
    await saveStep(db, bisectId, record);
    log(`${head}: ${record.status}: ${record.reason}`);
    steps.push(record);
    return record;
  };

  const finish = async (o: Omit<BisectOutcome, 'bisectId' | 'resumed' | 'good' | 'bad' | 'commits' | 'steps' | 'bisectSteps' | 'evidence'>): Promise<BisectOutcome> => {
    await db.bisect.update({ where: { id: bisectId }, data: { status: o.status, firstBad: o.firstBad?.commit ?? null, result: o.message } });
    const decisive = o.firstBad ? steps.find((s) => s.commit === o.firstBad!.commit) : undefined;
    let evidence: Comparison | null = null;
    if (decisive?.sweepId) {
      evidence = compareSweep(await loadSweepResults(db, decisive.sweepId), null);
    }
    return { ...o, bisectId, resumed: recorded, good, bad, commits, steps, bisectSteps: steps.filter((s) => s.position !== commits.length - 1).length, evidence };
  };

  const check = await takeStep(commits.length - 1, badPlan);
  if (check.status !== 'bad') {
    const message =
      check.status === 'skip'
        ? `the bad commit ${bad.commit.slice(0, 10)} cannot be measured against good: ${check.reason}`
        : `the bad commit ${bad.commit.slice(0, 10)} is not slower than good ${good.commit.slice(0, 10)} by more than ${req.thresholdPct}% (${check.reason}): nothing to bisect`;
    return finish({ status: check.status === 'skip' ? 'failed' : 'no-regression', firstBad: null, candidates: [], message });
  }
  for (;;) {
    ctx.signal?.throwIfAborted();
    const known = new Map<number, StepStatus>(steps.map((s) => [s.position, s.status]));
    const next = nextStep(commits.length, known);
    if (next.kind === 'found') {
      const first = commits[next.position]!;
      return finish({ status: 'found', firstBad: first, candidates: [first], message: `first slower commit: ${first.commit} "${first.subject}"` });
    }
    if (next.kind === 'ambiguous') {
      const cands = next.positions.map((p) => commits[p]!);
      return finish({
        status: 'ambiguous',
        firstBad: null,
        candidates: cands,
        message: `only skipped commits are left between the last good and the first bad one: the first slower commit is one of ${cands.map((c) => c.commit.slice(0, 10)).join(', ')}`,
      });
    }
    await takeStep(next.position, null);
  }
}

function sourceHashOf(plan: Plan, i: number): string | null {
  const b = plan.builds[i];
  return b && b.source.kind === 'bundle' ? b.source.hash : null;
}

async function saveStep(db: Db, bisectId: string, r: StepRecord): Promise<void> {
  const data = {
    position: r.position,
    seq: r.seq,
    sweepId: r.sweepId,
    sourceHash: r.sourceHash,
    status: r.status,
    verdict: r.verdict,
    speedup: r.speedup,
    ciLo: r.ciLo,
    ciHi: r.ciHi,
    reason: r.reason,
    finishedAt: new Date(),
  };
  await db.bisectStep.upsert({ where: { id: `${bisectId}/${r.commit}` }, create: { id: `${bisectId}/${r.commit}`, bisectId, commit: r.commit, ...data }, update: data });
}

