/**
 * The run's whole process tree is the unit (worker/run-binary.ts), with real
 * processes: the real CPU `moe-bench`, started through small sh wrappers that
 * leave children behind the way a misbehaving binary (or a tool it runs)
 * would. Each wrapper writes the pids of what it left into a file, so the test
 * can check they are gone.
 *
 * The fault this reproduces: a binary that exits at once but leaves a
 * grandchild holding its stdout stayed `running` past its timeout (execa
 * waited for the pipe), and was then recorded as `timeout`.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrcDir } from '../../src/config.js';
import { toJob } from '../../src/queue/job.js';
import { binaryArgs } from '../../worker/args.js';
import { ensureBinary } from '../../worker/build.js';
import { PermanentRunError } from '../../worker/errors.js';
import { runBinary } from '../../worker/run-binary.js';
import { TEST_CACHE } from '../helpers/env.js';
import { tempDir, waitFor } from '../helpers/services.js';
import { pidAlive, report } from './procs.js';
import { tinyPlan } from './sweeps.js';

const tmp = tempDir('run-binary');
let bench = '';
let args: string[] = [];

beforeAll(async () => {
  bench = (await ensureBinary({ csrc: csrcDir(), cache: TEST_CACHE, backend: 'cpu', arch: 'sm_90a' })).path;
  const plan = tinyPlan('p-run-binary');
  args = binaryArgs(toJob(plan, plan.runs[0]!, Date.now()), null);
}, 120_000);
afterAll(() => tmp.cleanup());

/** An sh wrapper: `body` runs first (it may start children, recording each pid with `note`), then execs the real binary. */
function wrapper(name: string, body: string): { path: string; pids: () => number[] } {
  const path = join(tmp.dir, `${name}.sh`);
  const pidFile = join(tmp.dir, `${name}.pids`);
  writeFileSync(pidFile, '');
  writeFileSync(path, `#!/bin/sh\nnote() { echo "$1" >> '${pidFile}'; }\n${body}\nexec '${bench}' "$@"\n`);
  chmodSync(path, 0o755);
  return { path, pids: () => readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number) };
}

async function gone(pids: number[]): Promise<boolean> {
  await waitFor(`pids ${pids.join(', ')} to be gone`, async () => pids.every((p) => !pidAlive(p)), 5000, 50);
  return true;
}

describe('the native run as a process group', () => {
  it('a binary that leaves a grandchild holding stdout ends promptly with its real outcome; the grandchild is killed', async () => {
    // The grandchild keeps the binary's stdout and stderr open for 60 s; the job's timeout is 20 s.
    const w = wrapper('grandchild', 'sleep 60 &\nnote $!');
    const t0 = performance.now();
    const run = await runBinary(w.path, args, { timeoutMs: 20_000 });
    const elapsed = performance.now() - t0;
    expect(run.output.check.pass).toBe(true); // done: the binary's own JSON, not `timeout`
    expect(elapsed).toBeLessThan(20_000); // it never waited for the 60 s grandchild, nor for the timeout
    const [grandchild] = w.pids();
    expect(grandchild).toBeGreaterThan(0);
    expect(await gone([grandchild!])).toBe(true);
    report('grandchild holds stdout', { outcome: 'done', wallMs: run.wallMs, endedAfterMs: elapsed, grandchildKilled: true });
  });

  it('a grandchild that left the group (setsid) cannot hold the run: its pipes are closed after the grace', async () => {
    const w = wrapper('escaped', 'setsid sleep 30 &\nnote $!');
    const t0 = performance.now();
    const run = await runBinary(w.path, args, { timeoutMs: 20_000 });
    const elapsed = performance.now() - t0;
    expect(run.output.check.pass).toBe(true);
    expect(elapsed).toBeLessThan(10_000); // the pipe grace (2 s), not the 30 s sleep nor the 20 s timeout
    // Outside the group by its own doing: not ours to find. The test cleans it up by its pid.
    for (const pid of w.pids()) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    report('grandchild escaped with setsid', { outcome: 'done', endedAfterMs: elapsed });
  });

  it('the timeout kills the whole group, the binary and everything it started', async () => {
    const w = wrapper('hang', 'sleep 60 &\nnote $!\nsleep 60 &\nnote $!\nexec sleep 60');
    const t0 = performance.now();
    const err = await runBinary(w.path, args, { timeoutMs: 1000 }).catch((e: unknown) => e);
    const elapsed = performance.now() - t0;
    expect(err).toBeInstanceOf(PermanentRunError);
    expect((err as PermanentRunError).status).toBe('timeout');
    expect(elapsed).toBeLessThan(8000); // SIGTERM at 1 s
    expect(w.pids()).toHaveLength(2);
    expect(await gone(w.pids())).toBe(true);
    report('timeout kills the group', { timeoutMs: 1000, endedAfterMs: elapsed, leftovers: 0 });
  });

  it('a child that ignores SIGTERM is killed with SIGKILL after the grace', async () => {
    // Ignored signals are inherited: the child and the binary (exec'd sleep) both ignore SIGTERM.
    const w = wrapper('stubborn', "trap '' TERM\nsleep 60 &\nnote $!\nexec sleep 60");
    const t0 = performance.now();
    const err = await runBinary(w.path, args, { timeoutMs: 500 }).catch((e: unknown) => e);
    expect((err as PermanentRunError).status).toBe('timeout');
    expect(await gone(w.pids())).toBe(true);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(5000); // SIGTERM changed nothing; SIGKILL came after the grace
    expect(elapsed).toBeLessThan(15_000);
    report('SIGTERM ignored', { timeoutMs: 500, endedAfterMs: elapsed });
  });

  it('cancellation kills the whole group', async () => {
    const w = wrapper('cancel', 'sleep 60 &\nnote $!\nexec sleep 60');
    const ac = new AbortController();
    const pending = runBinary(w.path, args, { timeoutMs: 60_000, signal: ac.signal, onSpawn: () => setTimeout(() => ac.abort(), 300) });
    await expect(pending).rejects.toThrow(/run cancelled/);
    expect(await gone(w.pids())).toBe(true);
  });

  it('the process running the binary exits: the group goes with it', async () => {
    // A separate Node process runs the binary and exits while it runs (as the worker does on a second signal).
    const w = wrapper('parent-exit', 'sleep 60 &\nnote $!\nexec sleep 60');
    const script = join(tmp.dir, 'parent.mjs');
    const runBinaryJs = join(import.meta.dirname, '..', '..', 'dist', 'worker', 'run-binary.js');
    writeFileSync(
      script,
      `import { runBinary } from ${JSON.stringify(runBinaryJs)};\n` +
        `void runBinary(${JSON.stringify(w.path)}, [], { timeoutMs: 60_000, onSpawn: (pid) => { console.log(pid); setTimeout(() => process.exit(130), 300); } }).catch(() => {});\n`,
    );
    const { execa } = await import('execa');
    const r = await execa(process.execPath, [script], { reject: false, timeout: 30_000 });
    expect(r.exitCode).toBe(130);
    const leader = Number(String(r.stdout).trim());
    expect(leader).toBeGreaterThan(0);
    expect(await gone([leader, ...w.pids()])).toBe(true);
  });
});
