/**
 * Real processes for the fault tests: a test-owned redis-server (Postgres: ../helpers/postgres.ts) on
 * spare ports, the farm's worker and collector as `node dist/src/cli.js …`
 * children, and the means to kill, stop and restart each of them.
 *
 * Every process started here is remembered and killed by `killAll()` (call it
 * in afterEach), by its pid only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { recordPlan } from '../../src/db/plan.js';
import type { Db } from '../../src/db/client.js';
import { poolsKey, runQueueName } from '../../src/queue/names.js';
import { RUN_JOB_OPTIONS } from '../../src/queue/options.js';
import { planBundles } from '../../src/queue/submit.js';
import { toJob } from '../../src/queue/job.js';
import { storeBundles } from '../../src/source/store.js';
import type { RunJob } from '../../src/schema/job.js';
import type { Plan, PlannedRun } from '../../src/sweep/expand.js';
import { redisServerBinary, spareLocalPort } from '../../src/services/redis-server.js';
import { TEST_CACHE } from '../helpers/env.js';
import { CLI, ROOT, waitFor } from '../helpers/services.js';

const live = new Set<Proc>();


/** Whether a process of this pid exists (signal 0 reaches it). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A child process whose output is kept (for assertions and for grepping secrets). */
export class Proc {
  private out = '';
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    live.add(this);
    child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.out += d.toString()));
    // Resolves once the process has exited and its output has been read: Node fires 'exit' while the stdio pipes
    // may still hold the last lines (a test reading output() right after would miss them), so it waits for
    // 'close' too, at most 2 s (a grandchild that inherited the pipes could hold them open).
    const closed = new Promise<void>((resolveClose) => child.once('close', () => resolveClose()));
    this.exited = new Promise((resolveExit) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        live.delete(this);
        void Promise.race([closed, sleep(2000)]).then(() => resolveExit(code));
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  output(): string {
    return this.out;
  }

  /** Waits until the output matches; fails early, with the output, if the process exits first. */
  async waitFor(re: RegExp, timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!re.test(this.out)) {
      if (!this.running) throw new Error(`${this.name} exited (${this.exitCode}) before printing ${re}:\n${this.out}`);
      if (Date.now() > until) throw new Error(`${this.name}: no ${re} after ${timeoutMs} ms:\n${this.out}`);
      await sleep(50);
    }
  }

  /** SIGKILL: no cleanup, no goodbye. Resolves when it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

export function spawnProc(name: string, cmd: string, args: string[], env: Record<string, string> = {}, cwd = ROOT): Proc {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Proc(name, child);
}

/** Kills every process these helpers started and that is still running (by pid). */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill()));
}

// ---------------------------------------------------------------- Redis

export interface RedisOpts {
  dir: string;
  password?: string;
  /** Serve TLS only (the plain port is closed): the cert/key pair is made here with openssl. */
  tls?: boolean;
  /** AOF fsync policy (default always: a SIGKILL loses no acknowledged write). */
  fsync?: 'always' | 'everysec';
}

export class OwnedRedis {
  proc: Proc | null = null;
  restarts = 0;
  private constructor(
    readonly port: number,
    readonly opts: RedisOpts,
  ) {}

  static async start(opts: RedisOpts): Promise<OwnedRedis> {
    const r = new OwnedRedis(await spareLocalPort(), opts);
    if (opts.tls) await makeCert(opts.dir);
    await r.up();
    return r;
  }

  /** The URL clients use. TLS clients must trust `certFile` (NODE_EXTRA_CA_CERTS). */
  get url(): string {
    const auth = this.opts.password ? `:${encodeURIComponent(this.opts.password)}@` : '';
    return `${this.opts.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${this.port}`;
  }

  get certFile(): string {
    return join(this.opts.dir, 'cert.pem');
  }

  /** Env for a child process that talks to this server. */
  clientEnv(): Record<string, string> {
    return { REDIS_URL: this.url, ...(this.opts.tls ? { NODE_EXTRA_CA_CERTS: this.certFile } : {}) };
  }

  private async up(): Promise<void> {
    const o = this.opts;
    const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', o.fsync ?? 'always', '--dir', o.dir];
    args.push('--maxmemory-policy', 'noeviction');
    if (o.password) args.push('--requirepass', o.password);
    if (o.tls) {
      args.push('--port', '0', '--tls-port', String(this.port), '--tls-cert-file', this.certFile, '--tls-key-file', join(o.dir, 'key.pem'));
      args.push('--tls-ca-cert-file', this.certFile, '--tls-auth-clients', 'no');
    } else {
      args.push('--port', String(this.port));
    }
    this.proc = spawnProc(`redis:${this.port}`, redisServerBinary(), args);
    await this.proc.waitFor(/Ready to accept connections/, 10_000);
  }

  /** A client in this process (TLS trusts the test cert). */
  client(): Redis {
    const r = new Redis(this.url, {
      maxRetriesPerRequest: null,
      ...(this.opts.tls ? { tls: { ca: readFileSync(this.certFile) } } : {}),
    });
    r.on('error', () => {});
    return r;
  }

  /** Crash (SIGKILL) and, after `downMs`, start again on the same port from the same AOF. */
  async crashAndRestart(downMs: number): Promise<void> {
    await this.proc?.kill();
    await sleep(downMs);
    await this.up();
    this.restarts++;
  }

  async stop(): Promise<void> {
    await this.proc?.kill();
  }
}

async function makeCert(dir: string): Promise<void> {
  await execa('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
}

// ---------------------------------------------------------------- the farm's processes

export interface FarmEnv {
  redis: OwnedRedis;
  prefix: string;
  /** Lock duration for workers and collector: stall detection after about this long. */
  lockMs?: number;
  /**
   * The workers' state folder (leases, GPU-control records). A rig gives its own: the host's default is shared by
   * every test file running at once, so one file's worker would clean up after another file's killed worker.
   */
  stateDir?: string;
}

function farmEnv(f: FarmEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...f.redis.clientEnv(),
    MOEFARM_PREFIX: f.prefix,
    MOEFARM_CACHE: TEST_CACHE,
    MOEFARM_LOCK_MS: String(f.lockMs ?? 2000),
    ...(f.stateDir ? { MOEFARM_STATE_DIR: f.stateDir } : {}),
    ...extra,
  };
}

/** A queue's job counts by state (the states a farm test asserts on). */
export async function queueCounts(f: { client: Redis; prefix: string }, name: string): Promise<Record<string, number>> {
  const q = new Queue(name, { connection: f.client, prefix: f.prefix });
  try {
    return await q.getJobCounts('completed', 'waiting', 'active', 'delayed', 'failed', 'prioritized');
  } finally {
    await q.close();
  }
}

/**
 * A queue's counts once nothing in it is waiting, delayed or being worked on. The collector acknowledges a result
 * only after its row has committed (and a worker its run only after handing the outcome over), so a row can be
 * visible a moment before its job counts as completed: wait for the queue to come to rest, then assert what rests.
 */
export async function restingCounts(f: { client: Redis; prefix: string }, name: string, timeoutMs = 30_000): Promise<Record<string, number>> {
  return waitFor(`queue ${name} to come to rest`, async () => {
    const c = await queueCounts(f, name);
    return c['active'] === 0 && c['waiting'] === 0 && c['delayed'] === 0 && c['prioritized'] === 0 ? c : null;
  }, timeoutMs, 50);
}

/** A `moefarm worker` child; `name` null: no --name, the worker names itself (host/pool/device, numbered when taken). */
export async function startWorker(f: FarmEnv, pool: string, name: string | null, extraEnv: Record<string, string> = {}): Promise<Proc> {
  const named = name === null ? [] : ['--name', name];
  const p = spawnProc(`worker ${name ?? '(default name)'}`, process.execPath, [CLI, 'worker', '--pool', pool, ...named, '--test-hooks'], farmEnv(f, extraEnv));
  await p.waitFor(/serving pool/);
  return p;
}

export async function startCollector(f: FarmEnv, dbUrl: string, extraEnv: Record<string, string> = {}): Promise<Proc> {
  const p = spawnProc('collector', process.execPath, [CLI, 'serve'], farmEnv(f, { DATABASE_URL: dbUrl, ...extraEnv }));
  await p.waitFor(/collector: writing results/);
  return p;
}

/** Runs the CLI once, to completion. */
export function runCli(f: FarmEnv, args: string[], extraEnv: Record<string, string> = {}) {
  return execa(process.execPath, [CLI, ...args], { cwd: ROOT, reject: false, timeout: 60_000, env: farmEnv(f, extraEnv) });
}

/** `(N recorded, M duplicates ignored)` from a collector that was stopped gracefully. */
export function collectorCounts(p: Proc): { recorded: number; duplicates: number } | null {
  const m = /stopped \((\d+) recorded, (\d+) duplicates ignored\)/.exec(p.output());
  return m ? { recorded: Number(m[1]), duplicates: Number(m[2]) } : null;
}

/**
 * Records the plan and enqueues its runs, as `sweep submit` does, but lets a
 * test attach TEST ONLY hooks (or other changes) to chosen jobs.
 */
export async function enqueuePlan(
  db: Db,
  redis: Redis,
  prefix: string,
  plan: Plan,
  tweak: (job: RunJob, run: PlannedRun, index: number) => RunJob = (j) => j,
): Promise<void> {
  await storeBundles(redis, plan.sweepId, planBundles(plan), prefix);
  await recordPlan(db, plan, null);
  await redis.sadd(poolsKey(prefix), plan.sweep.pool);
  const q = new Queue(runQueueName(plan.sweep.pool), { connection: redis, prefix });
  const now = Date.now();
  await q.addBulk(plan.runs.map((r, i) => ({ name: 'run', data: tweak(toJob(plan, r, now), r, i), opts: { ...RUN_JOB_OPTIONS, jobId: r.id } })));
  await q.close();
}

/** Every run of the sweep: its status and how many result rows it has. */
export async function outcomes(db: Db, sweepId: string): Promise<Array<{ id: string; status: string; reason: string | null; results: number; workerId: string | null }>> {
  const runs = await db.run.findMany({ where: { sweepId }, include: { _count: { select: { results: true } } }, orderBy: { id: 'asc' } });
  return runs.map((r) => ({ id: r.id, status: r.status, reason: r.reason, results: r._count.results, workerId: r.workerId }));
}

export async function settled(db: Db, sweepId: string, expected: number): Promise<boolean> {
  const all = await db.run.count({ where: { sweepId } });
  const open = await db.run.count({ where: { sweepId, status: 'queued' } });
  return all === expected && open === 0;
}

/** Figures a test measured, printed in one line so a run's log shows them (and the README quotes them). */
export function report(test: string, figures: Record<string, unknown>): void {
  process.stdout.write(`[faults] ${test}: ${Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v)}`).join(' ')}\n`);
}
