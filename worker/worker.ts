/**
 * The worker daemon: one per GPU (or one per CPU host). Takes run jobs from
 * its pool's queue, one at a time; builds the binary (cached), checks the
 * job's environment requests, runs it, and hands the outcome to the results
 * queue with the run id as job id. Permanent failures become outcomes too;
 * only transient errors are thrown, for BullMQ to retry.
 *
 * Shutdown (SIGINT/SIGTERM): stop taking jobs and finish the one in flight;
 * a second signal kills the run and leaves the job to BullMQ's stalled-job
 * check, which hands it to another worker. Nothing is lost either way.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../src/config.js';
import { RESULTS_QUEUE, runQueueName } from '../src/queue/names.js';
import { RESULT_JOB_OPTIONS } from '../src/queue/options.js';
import { RunJobSchema, type Outcome, type RunJob, type WorkerIdentity } from '../src/schema/job.js';
import { formatIssues } from '../src/sweep/load.js';
import { binaryArgs } from './args.js';
import { ensureBinary, type BuildBackend } from './build.js';
import { PermanentRunError } from './errors.js';
import { workerIdentity } from './identity.js';
import { runBinary } from './run-binary.js';

export interface WorkerOptions {
  /** Redis connection for the BullMQ worker (blocking) and the results producer. */
  connection: Redis;
  pool: string;
  backend: BuildBackend;
  /** GPU index for the cuda backend (CUDA_VISIBLE_DEVICES is set to it for the run). */
  gpu: number | null;
  /** cuda: sm_90a | sm_89 | sm_80. */
  arch: string;
  csrc: string;
  cache: string;
  /** Name of this worker (default host/pool/device). */
  name?: string;
  /** Honour jobs' TEST ONLY hooks (default false). */
  testHooks?: boolean;
  /** Lock duration, ms: a killed worker's job is taken over after about this long (default 30000). */
  lockDurationMs?: number;
  /** Stall checks a job may fail before it is given up (default 2). */
  maxStalledCount?: number;
  log?: (line: string) => void;
}

export class FarmWorker {
  private worker: Worker | null = null;
  private results: Queue | null = null;
  private identity: WorkerIdentity | null = null;
  private closing: Promise<void> | null = null;
  processed = 0;

  constructor(private readonly opts: WorkerOptions) {}

  private log(line: string): void {
    (this.opts.log ?? ((l: string) => process.stderr.write(l + '\n')))(line);
  }

  async start(): Promise<WorkerIdentity> {
    this.identity = await workerIdentity({ pool: this.opts.pool, backend: this.opts.backend, gpuIndex: this.opts.gpu, ...(this.opts.name ? { name: this.opts.name } : {}) });
    const prefix = queuePrefix();
    this.results = new Queue(RESULTS_QUEUE, { connection: this.opts.connection, prefix });
    this.worker = new Worker(runQueueName(this.opts.pool), (job, _token, signal) => this.process(job, signal), {
      connection: this.opts.connection,
      prefix,
      concurrency: 1,
      lockDuration: this.opts.lockDurationMs ?? 30_000,
      stalledInterval: Math.max(1000, Math.floor((this.opts.lockDurationMs ?? 30_000) / 2)),
      maxStalledCount: this.opts.maxStalledCount ?? 2,
    });
    this.worker.on('error', (err) => this.log(`worker: ${err.message}`));
    return this.identity;
  }

  private async process(job: Job, signal?: AbortSignal): Promise<string> {
    const parsed = RunJobSchema.safeParse(job.data);
    if (!parsed.success) {
      // Without a valid payload there is no run id to report under; fail the job for the collector's reconciler.
      throw new Error(`invalid job payload: ${formatIssues(`job ${job.id}`, parsed.error.issues.slice(0, 3))}`);
    }
    const data = parsed.data;
    const startedAt = Date.now();
    const base = {
      runId: data.runId,
      sweepId: data.sweepId,
      pool: this.opts.pool,
      job: data,
      attempts: job.attemptsMade + 1,
      worker: this.identity,
      env: this.environment(data),
      telemetry: null,
      flags: [] as string[],
    };
    let outcome: Outcome;
    try {
      this.checkRequests(data);
      const built = await ensureBinary({ csrc: this.opts.csrc, cache: this.opts.cache, backend: this.opts.backend, arch: this.opts.arch, extraFlags: data.buildFlags });
      const args = binaryArgs(data, this.opts.testHooks ? (data.test ?? null) : null);
      const env: Record<string, string> = this.opts.gpu !== null ? { CUDA_VISIBLE_DEVICES: String(this.opts.gpu) } : {};
      const run = await runBinary(built.path, args, { timeoutMs: data.timeoutS * 1000, ...(signal ? { signal } : {}), env });
      outcome = {
        ...base,
        status: 'done',
        reason: null,
        build: built.info,
        output: run.output,
        stdoutTail: null,
        stderrTail: run.stderrTail || null,
        wallMs: run.wallMs,
        startedAt,
        finishedAt: Date.now(),
      };
    } catch (err) {
      if (!(err instanceof PermanentRunError)) throw err; // transient: BullMQ retries
      outcome = {
        ...base,
        status: err.status,
        reason: err.message,
        build: null,
        output: null,
        stdoutTail: err.stdoutTail,
        stderrTail: err.stderrTail,
        wallMs: Date.now() - startedAt,
        startedAt,
        finishedAt: Date.now(),
      };
      this.log(`worker: ${data.runId}: ${err.status}: ${err.message}`);
    }
    // The run id is the result's job id: a retried hand-off adds nothing.
    await this.results!.add('outcome', outcome, { ...RESULT_JOB_OPTIONS, jobId: data.runId });
    this.processed++;
    return outcome.status;
  }

  /** Environment requests this worker cannot honour end the run as unsatisfiable, never run under other conditions. */
  private checkRequests(job: RunJob): void {
    const id = this.identity?.id ?? 'this worker';
    for (const { point } of job.points) {
      if (point.backend !== this.opts.backend) {
        throw new PermanentRunError('unsatisfiable', `worker ${id} runs the ${this.opts.backend} backend, the point asks for ${point.backend}`);
      }
      if (point.clock !== 'default') {
        throw new PermanentRunError('unsatisfiable', `worker ${id}: clock control not permitted (point asks for clock ${JSON.stringify(point.clock)})`);
      }
      if (point.power !== 'default') {
        throw new PermanentRunError('unsatisfiable', `worker ${id}: power control not permitted (point asks for power ${JSON.stringify(point.power)})`);
      }
    }
  }

  private environment(job: RunJob): Record<string, unknown> {
    const p = job.points[0]!.point;
    return { clock: p.clock, power: p.power, gpu: this.identity?.gpu ?? null, backend: this.opts.backend };
  }

  /** Resolves when the queue has no job left for this worker. */
  drained(): Promise<void> {
    return new Promise((resolveDrained) => this.worker?.once('drained', () => resolveDrained()));
  }

  /** Idempotent. Graceful unless `force`: the job in flight finishes and reports first. */
  close(force = false): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.worker?.close(force);
      } catch (err) {
        this.log(`worker: close: ${(err as Error).message}`);
      }
      try {
        await this.results?.close();
      } catch {
        /* closing anyway */
      }
    })();
    return this.closing;
  }
}
