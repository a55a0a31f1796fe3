/**
 * Runs the native binary once: argument array (no shell), a timeout (SIGTERM,
 * then SIGKILL 5 s later), the job's cancellation signal; classifies what came
 * back into done / check-failed / bad-output / crashed / timeout / invalid.
 *
 * The run's whole process tree is the unit. The binary starts in a process
 * group of its own (`detached`), and every ending kills the group: the
 * timeout and a cancellation (SIGTERM, SIGKILL after the grace), the binary's
 * own exit (SIGKILL to whatever it left behind), and this process's exit.
 * The timeout measures the process, not its pipes: a binary that exits at once
 * but leaves a child holding its stdout ends with its real outcome (execa
 * alone waited for the pipes to close, so such a run stayed `running` past its
 * timeout until the grandchild was killed by hand, and was then recorded as
 * `timeout`). A descendant that left the group (setsid) cannot be reached
 * through it; its pipes are closed PIPE_GRACE_MS after the exit instead, so
 * the run still ends.
 */
import { execa } from 'execa';
import { BenchOutputSchema, type BenchOutput } from '../src/schema/bench-output.js';
import { formatIssues } from '../src/schema/issues.js';
import { tail } from './build.js';
import { PermanentRunError } from './errors.js';

export interface BinaryRun {
  output: BenchOutput;
  wallMs: number;
  stdoutTail: string;
  stderrTail: string;
}

export const KILL_GRACE_MS = 5000;
/** After the binary exits, how long its pipes may stay open (output still draining) before they are closed. */
export const PIPE_GRACE_MS = 2000;

/** Process groups of runs in flight: killed if this process exits while they run. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* the group is gone already */
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers run on process.exit() and a normal end (not on SIGKILL: the next start's orphan clean-up covers that).
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
}

export async function runBinary(
  binary: string,
  args: string[],
  opts: { timeoutMs: number; signal?: AbortSignal; env?: Record<string, string>; onSpawn?: (pid: number) => void },
): Promise<BinaryRun> {
  installExitHook();
  const t0 = performance.now();
  const child = execa(binary, args, {
    reject: false,
    detached: true,
    maxBuffer: 64 * 1024 * 1024,
    stripFinalNewline: false,
    env: opts.env ?? {},
    extendEnv: true,
  });
  const pgid = child.pid;
  let timedOut = false;
  let cancelled = false;
  let exitedAt: number | null = null;
  let timeout: NodeJS.Timeout | undefined;
  const timers: NodeJS.Timeout[] = [];
  const stop = (): void => {
    if (pgid === undefined || exitedAt !== null) return;
    killGroup(pgid, 'SIGTERM');
    timers.push(setTimeout(() => exitedAt === null && killGroup(pgid, 'SIGKILL'), KILL_GRACE_MS));
  };
  const onAbort = (): void => {
    cancelled = true;
    stop();
  };
  if (pgid !== undefined) {
    liveGroups.add(pgid);
    child.once('exit', () => {
      exitedAt = performance.now();
      clearTimeout(timeout);
      // What the binary left behind is part of the run, and the run is over. Killed at once, while the group
      // id cannot yet have been reused (it stays taken while any member lives).
      killGroup(pgid, 'SIGKILL');
      liveGroups.delete(pgid);
      timers.push(
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
        }, PIPE_GRACE_MS),
      );
    });
    timeout = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  }
  let r: Awaited<typeof child>;
  try {
    if (pgid !== undefined) opts.onSpawn?.(pgid);
    r = await child;
  } finally {
    clearTimeout(timeout);
    for (const t of timers) clearTimeout(t);
    opts.signal?.removeEventListener('abort', onAbort);
    if (pgid !== undefined && exitedAt === null) {
      // Never exited as far as we saw (onSpawn threw, a spawn or stream error): make sure nothing of it runs on.
      killGroup(pgid, 'SIGKILL');
      liveGroups.delete(pgid);
    }
  }
  const wallMs = (exitedAt ?? performance.now()) - t0;
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr : '';
  const so = tail(stdout);
  const se = tail(stderr);
  if (cancelled) throw new Error('run cancelled');
  if (timedOut) throw new PermanentRunError('timeout', `killed after the job's timeout of ${Math.round(opts.timeoutMs / 1000)} s`, so, se, wallMs);
  if (r.exitCode === 2) throw new PermanentRunError('invalid', `the binary refused the job: ${firstLine(stderr) || 'exit code 2'}`, so, se, wallMs);
  if (r.exitCode !== 0 && r.exitCode !== 1) {
    const how = r.signal ? `killed by ${r.signal}` : r.exitCode === undefined ? `did not start (${firstLine(r.message ?? '') || 'unknown'})` : `exit code ${r.exitCode}`;
    throw new PermanentRunError('crashed', `the binary crashed (${how}): ${firstLine(stderr)}`, so, se, wallMs);
  }
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch (err) {
    throw new PermanentRunError('bad-output', `stdout is not one JSON document (${(err as Error).message})`, so, se, wallMs);
  }
  const parsed = BenchOutputSchema.safeParse(json);
  if (!parsed.success) {
    throw new PermanentRunError('bad-output', `output does not match the schema: ${formatIssues('output', parsed.error.issues.slice(0, 3)).replace(/\n/g, '; ')}`, so, se, wallMs);
  }
  const output = parsed.data;
  if (!output.check.pass || r.exitCode === 1) {
    const bad = output.results.filter((x) => !x.check.pass).map((x) => `${x.variant} rel_err=${x.check.rel_err ?? 'NaN'} tol=${x.check.tol}`);
    throw new PermanentRunError('check-failed', `correctness check failed: ${bad.join(', ') || 'exit code 1'}`, so, se, wallMs);
  }
  return { output, wallMs, stdoutTail: so, stderrTail: se };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 500) ?? '';
}
