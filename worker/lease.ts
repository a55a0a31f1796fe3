/**
 * Each worker's lease on this host: a file in the state folder naming the
 * worker's process (pid and start time) and the run it has in flight (the
 * binary's process group and its leader's start time).
 *
 * A worker killed outright (SIGKILL) cannot take its run with it, and on a
 * GPU the orphan would compete with the next run. Any worker on the host
 * reaps the leases of workers PROVEN dead, at its start and before each job:
 * a lease is dead when its process is gone or its pid now belongs to a
 * process that started at another time. Only then is its run's group killed,
 * and only if the group is still the one recorded. A live worker's lease is
 * never touched, whatever its name: the clean-up used to go by the worker's
 * name, two workers on one host could share it, and a third one's start
 * killed a live run of another as "left behind".
 *
 * Start times come from /proc/PID/stat (field 22, clock ticks since boot):
 * with the pid they name one process for the life of the machine.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const LeaseSchema = z.object({
  host: z.string(),
  workerId: z.string(),
  pid: z.int().positive(),
  pidStart: z.string(),
  run: z.object({ pgid: z.int().positive(), start: z.string() }).nullable(),
  at: z.string(),
});
export type Lease = z.infer<typeof LeaseSchema>;

/** The process's start time (clock ticks since boot), or null when there is no such process. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall; `rest` starts at field 3
  } catch {
    return null;
  }
}

export interface Reaped {
  workerId: string;
  pid: number;
  /** The dead worker's run whose group was killed, if one was still there. */
  killedGroup: number | null;
}

export class WorkerLease {
  readonly file: string;
  private readonly base: Omit<Lease, 'run' | 'at'>;

  private constructor(
    private readonly stateDir: string,
    workerId: string,
    pidStart: string,
  ) {
    this.base = { host: hostname(), workerId, pid: process.pid, pidStart };
    this.file = join(stateDir, `lease-${process.pid}-${pidStart}.json`);
  }

  /** This process's lease; null where there is no /proc to prove liveness with (then no clean-up either). */
  static create(stateDir: string, workerId: string): WorkerLease | null {
    const pidStart = processStart(process.pid);
    return pidStart === null ? null : new WorkerLease(stateDir, workerId, pidStart);
  }

  /** Records the run in flight (its process group), or none. Written whole (rename), never half. */
  write(run: { pgid: number } | null): void {
    mkdirSync(this.stateDir, { recursive: true });
    const start = run ? processStart(run.pgid) : null;
    const lease: Lease = { ...this.base, run: run && start ? { pgid: run.pgid, start } : null, at: new Date().toISOString() };
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(lease));
    renameSync(tmp, this.file);
  }

  release(): void {
    rmSync(this.file, { force: true });
  }
}

/** Kills the runs of workers on this host proven dead and removes their leases. Live workers' leases are left alone. */
export function reapDeadLeases(stateDir: string): Reaped[] {
  let names: string[];
  try {
    names = readdirSync(stateDir).filter((f) => /^lease-\d+-\d+\.json$/.test(f));
  } catch {
    return [];
  }
  const host = hostname();
  const reaped: Reaped[] = [];
  for (const name of names) {
    const file = join(stateDir, name);
    let lease: Lease;
    try {
      lease = LeaseSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    } catch {
      continue; // removed meanwhile by its owner or another reaper, or not ours to judge
    }
    // A state folder shared between hosts (NFS): pids of another host mean nothing here.
    if (lease.host !== host) continue;
    if (processStart(lease.pid) === lease.pidStart) continue; // alive: never touched
    reaped.push({ workerId: lease.workerId, pid: lease.pid, killedGroup: lease.run ? killDeadRun(lease.run) : null });
    rmSync(file, { force: true });
  }
  return reaped;
}

/**
 * The dead worker's run, if it is still the group recorded: its leader alive with the recorded start time, or
 * its leader gone while members remain (a group id is not reused while any member lives). A leader pid now
 * held by another process means the group ended and the number was reused: nothing to kill.
 */
function killDeadRun(run: { pgid: number; start: string }): number | null {
  const leaderStart = processStart(run.pgid);
  if (leaderStart !== null && leaderStart !== run.start) return null;
  try {
    process.kill(-run.pgid, 'SIGKILL');
    return run.pgid;
  } catch {
    return null; // the group is gone
  }
}
