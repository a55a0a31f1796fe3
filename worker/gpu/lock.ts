/**
 * One owner per GPU on a host: a lock file per GPU index in a host-wide
 * folder (default /tmp/moefarm-gpu-locks, MOEFARM_GPU_LOCK_DIR to move it),
 * shared by every worker of the host whatever its cache, pool or user. So a
 * worker per GPU and a worker per host (`--gpus all`) can share a machine
 * without both taking GPU 1: the second to start refuses, naming the owner.
 *
 * A lock is created with O_EXCL (one creator wins) and names its process
 * (pid and start time, worker/lease.ts): a lock whose process is dead (a
 * worker killed outright) is taken over. Taking over is the only removal of
 * another's lock and it runs under a short folder-wide mutex (an atomic
 * mkdir), after reading the lock again inside it: between that read and the
 * removal no one else can remove or replace the file (a fresh O_EXCL create
 * fails while it exists), so a live owner's lock is never removed.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, rmdirSync, statSync, chmodSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { gpuLockDir } from '../../src/config.js';
import { processStart } from '../lease.js';

const LockSchema = z.object({
  gpu: z.int().nonnegative(),
  host: z.string(),
  worker: z.string(),
  pid: z.int().positive(),
  pidStart: z.string().nullable(),
  at: z.string(),
});
export type GpuLockInfo = z.infer<typeof LockSchema>;

/** A GPU owned by another live worker: the message says which, and what to do. */
export class GpuTakenError extends Error {
  override readonly name = 'GpuTakenError';
  constructor(
    readonly gpu: number,
    readonly owner: GpuLockInfo,
    readonly file: string,
  ) {
    super(
      `GPU ${gpu} is already owned by worker ${owner.worker} (pid ${owner.pid}, since ${owner.at}; lock ${file}): ` +
        `a GPU is run by one worker at a time. Stop that worker, or start this one on other GPUs (--gpu N, --gpus 0,2,…)`,
    );
  }
}

/** Whether the process a lock names is alive: same pid and start time (or, without /proc, a pid that answers). */
function alive(info: GpuLockInfo): boolean {
  if (info.host !== hostname()) return true; // a folder shared between hosts: not ours to judge
  if (info.pidStart !== null) return processStart(info.pid) === info.pidStart;
  try {
    process.kill(info.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(file: string): GpuLockInfo | null {
  try {
    return LockSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return null;
  }
}

/** A mutex held for a few milliseconds while a dead owner's lock is taken over; one left by a dead process expires. */
function withTakeoverMutex<T>(dir: string, fn: () => T): T {
  const m = join(dir, '.takeover');
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      mkdirSync(m);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(m).mtimeMs > 10_000) rmdirSync(m); // its holder died inside the mutex
      } catch {
        /* gone meanwhile */
      }
      if (Date.now() > deadline) throw new Error(`GPU locks: ${m} has been held for over 5 s; remove it if no worker is starting`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    rmdirSync(m);
  }
}

export class GpuLock {
  private constructor(
    readonly gpu: number,
    readonly file: string,
    private readonly info: GpuLockInfo,
  ) {}

  /** Takes GPU `gpu` for `worker`, or throws GpuTakenError when a live worker owns it. */
  static acquire(gpu: number, worker: string, dir = gpuLockDir()): GpuLock {
    if (!Number.isInteger(gpu) || gpu < 0) throw new Error(`GPU lock: expected a GPU index, got ${gpu}`);
    mkdirSync(dir, { recursive: true });
    try {
      // Workers of every user share the folder (sticky: each removes only its own locks).
      if ((statSync(dir).mode & 0o1777) !== 0o1777) chmodSync(dir, 0o1777);
    } catch {
      /* another user's folder: creating in it is what counts */
    }
    const file = join(dir, `gpu-${gpu}.lock`);
    const info: GpuLockInfo = { gpu, host: hostname(), worker, pid: process.pid, pidStart: processStart(process.pid), at: new Date().toISOString() };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o644);
        try {
          writeSync(fd, JSON.stringify(info));
        } finally {
          closeSync(fd);
        }
        return new GpuLock(gpu, file, info);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readLock(file);
      // Unreadable: its creator is between open and write, alive by definition; read again.
      if (owner === null) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        const again = readLock(file);
        if (again === null) continue;
        if (alive(again)) throw new GpuTakenError(gpu, again, file);
      } else if (alive(owner)) {
        throw new GpuTakenError(gpu, owner, file);
      }
      // Its owner is dead: take it over, under the mutex, only if the file still names that dead owner.
      withTakeoverMutex(dir, () => {
        const now = readLock(file);
        if (now !== null && !alive(now)) rmSync(file, { force: true });
      });
    }
    const last = readLock(file);
    if (last) throw new GpuTakenError(gpu, last, file);
    throw new Error(`GPU lock ${file}: could not be created or read`);
  }

  /** Removes the lock if it is still this process's (idempotent). */
  release(): void {
    const now = readLock(this.file);
    if (now && now.pid === this.info.pid && now.pidStart === this.info.pidStart && now.at === this.info.at) rmSync(this.file, { force: true });
  }
}

/** Takes every GPU of the list, or none: on a refusal the ones taken are released and the error is thrown. */
export function acquireGpus(gpus: readonly number[], worker: string, dir = gpuLockDir()): GpuLock[] {
  const taken: GpuLock[] = [];
  try {
    for (const g of gpus) taken.push(GpuLock.acquire(g, worker, dir));
    return taken;
  } catch (err) {
    for (const l of taken) l.release();
    throw err;
  }
}
