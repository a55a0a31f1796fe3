/**
 * A server process that cannot outlive the process that started it.
 *
 * A private Redis or Postgres started for the demo or the tests must stop
 * when its owner ends, however it ends: normally, by Ctrl-C, or SIGKILLed
 * (then no exit handler runs). So the server is started by a small Node
 * "tether" process that holds a pipe from the owner: when the owner is gone
 * the kernel closes the pipe, and the tether stops the server (its stop
 * signal, SIGKILL after a grace period) and exits. Signals sent to the tether
 * are passed on to the server.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface TetherOptions {
  /** Signal that asks the server to stop cleanly (Redis: SIGTERM; Postgres: SIGINT, its "fast" shutdown). */
  stopSignal?: NodeJS.Signals;
  /** After the stop signal, SIGKILL after this long (default 10 s). */
  graceMs?: number;
  /** Run the server as this user and group (when started as root: Postgres refuses to run as root). */
  uid?: number;
  gid?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** A folder of the server's own (its data, its socket): removed by the tether once the server has exited. */
  removeDir?: string;
}

// Runs as `node -e TETHER_MAIN <json>`: a string, so that it works from src/ under the test runner and from dist/.
const TETHER_MAIN = `
const { spawn } = require('node:child_process');
const { rmSync } = require('node:fs');
const o = JSON.parse(process.argv[1]);
process.title = 'moefarm-tether ' + require('node:path').basename(o.cmd);
const child = spawn(o.cmd, o.args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: o.cwd, uid: o.uid, gid: o.gid });
let stopping = false;
const stop = (sig) => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(sig);
  if (!stopping) { stopping = true; setTimeout(() => child.kill('SIGKILL'), o.graceMs).unref(); }
};
process.stdin.on('end', () => stop(o.stopSignal));
process.stdin.on('error', () => stop(o.stopSignal));
process.stdin.resume();
for (const s of ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP']) process.on(s, () => stop(s));
child.on('error', (e) => {
  process.stderr.write('tether: cannot start ' + o.cmd + ': ' + e.message + '\\n');
  if (o.removeDir) try { rmSync(o.removeDir, { recursive: true, force: true }); } catch {}
  process.exit(127);
});
child.on('exit', (code, signal) => {
  if (o.removeDir) try { rmSync(o.removeDir, { recursive: true, force: true }); } catch {}
  process.exit(code ?? (signal ? 128 : 1));
});
`;

export interface Tethered {
  /** The tether process (the server is its only child). */
  readonly process: ChildProcess;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** Resolves when the server printed a line matching `re`; rejects, with its output, if it exits first or takes longer than `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs: number): Promise<void>;
  /** Resolves with the exit code once the server (and its tether) are gone. */
  readonly exited: Promise<number | null>;
  /** Stops the server with its stop signal (or `signal`) and waits until it is gone. Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnTethered(cmd: string, args: string[], opts: TetherOptions = {}): Tethered {
  const spec = { cmd, args, cwd: opts.cwd, uid: opts.uid, gid: opts.gid, removeDir: opts.removeDir, stopSignal: opts.stopSignal ?? 'SIGTERM', graceMs: opts.graceMs ?? 10_000 };
  const tether = spawn(process.execPath, ['-e', TETHER_MAIN, JSON.stringify(spec)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  tether.stdout.on('data', onData);
  tether.stderr.on('data', onData);
  tether.stdin.on('error', () => {});
  let done = false;
  const exited = new Promise<number | null>((resolveExit) =>
    tether.once('exit', (code) => {
      done = true;
      for (const l of listeners) l();
      resolveExit(code);
    }),
  );
  // The owner must be free to exit without stopping the server first: the closed pipe stops it then.
  tether.unref();
  for (const s of [tether.stdin, tether.stdout, tether.stderr]) (s as unknown as { unref?: () => void }).unref?.();

  let stopping: Promise<void> | null = null;
  return {
    process: tether,
    output: () => out,
    exited,
    waitFor: (re, timeoutMs) =>
      new Promise<void>((resolveWait, reject) => {
        const check = () => {
          if (re.test(out)) finish(null);
          else if (done) finish(new Error(`${cmd} exited before printing ${re}:\n${out.slice(-4000)}`));
        };
        const timer = setTimeout(() => finish(new Error(`${cmd}: no ${re} after ${timeoutMs} ms:\n${out.slice(-4000)}`)), timeoutMs);
        const finish = (err: Error | null) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolveWait();
        };
        listeners.add(check);
        check();
      }),
    stop: (signal) =>
      (stopping ??= (async () => {
        if (!done) {
          tether.ref(); // waiting for it to go must keep this process alive
          if (signal) tether.kill(signal);
          else tether.stdin.end();
          await exited;
        }
      })()),
  };
}
