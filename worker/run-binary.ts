/**
 * Runs the native binary once: argument array (no shell), a timeout (SIGTERM,
 * then SIGKILL 5 s later), the job's cancellation signal; classifies what came
 * back into done / check-failed / bad-output / crashed / timeout / invalid.
 */
import { execa } from 'execa';
import { BenchOutputSchema, type BenchOutput } from '../src/schema/bench-output.js';
import { formatIssues } from '../src/sweep/load.js';
import { tail } from './build.js';
import { PermanentRunError } from './errors.js';

export interface BinaryRun {
  output: BenchOutput;
  wallMs: number;
  stdoutTail: string;
  stderrTail: string;
}

export const KILL_GRACE_MS = 5000;

export async function runBinary(
  binary: string,
  args: string[],
  opts: { timeoutMs: number; signal?: AbortSignal; env?: Record<string, string>; onSpawn?: (pid: number) => void },
): Promise<BinaryRun> {
  const t0 = performance.now();
  const child = execa(binary, args, {
    reject: false,
    timeout: opts.timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: KILL_GRACE_MS,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    maxBuffer: 64 * 1024 * 1024,
    stripFinalNewline: false,
    env: opts.env ?? {},
    extendEnv: true,
  });
  if (child.pid !== undefined) opts.onSpawn?.(child.pid);
  const r = await child;
  const wallMs = performance.now() - t0;
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  const stderr = typeof r.stderr === 'string' ? r.stderr : '';
  const so = tail(stdout);
  const se = tail(stderr);
  if (r.isCanceled) throw new Error('run cancelled');
  if (r.timedOut) throw new PermanentRunError('timeout', `killed after the job's timeout of ${Math.round(opts.timeoutMs / 1000)} s`, so, se);
  if (r.exitCode === 2) throw new PermanentRunError('invalid', `the binary refused the job: ${firstLine(stderr) || 'exit code 2'}`, so, se);
  if (r.exitCode !== 0 && r.exitCode !== 1) {
    const how = r.signal ? `killed by ${r.signal}` : `exit code ${r.exitCode ?? '?'}`;
    throw new PermanentRunError('crashed', `the binary crashed (${how}): ${firstLine(stderr)}`, so, se);
  }
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch (err) {
    throw new PermanentRunError('bad-output', `stdout is not one JSON document (${(err as Error).message})`, so, se);
  }
  const parsed = BenchOutputSchema.safeParse(json);
  if (!parsed.success) {
    throw new PermanentRunError('bad-output', `output does not match the schema: ${formatIssues('output', parsed.error.issues.slice(0, 3)).replace(/\n/g, '; ')}`, so, se);
  }
  const output = parsed.data;
  if (!output.check.pass || r.exitCode === 1) {
    const bad = output.results.filter((x) => !x.check.pass).map((x) => `${x.variant} rel_err=${x.check.rel_err ?? 'NaN'} tol=${x.check.tol}`);
    throw new PermanentRunError('check-failed', `correctness check failed: ${bad.join(', ') || 'exit code 1'}`, so, se);
  }
  return { output, wallMs, stdoutTail: so, stderrTail: se };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 500) ?? '';
}
