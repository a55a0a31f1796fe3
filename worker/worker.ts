/**
 * The worker daemon: one per GPU (or one per CPU host). Takes run jobs from
 * its pool's queue, one at a time; builds the binary of every build the job
 * names, from the source bundle the job names by hash (fetched from Redis and
 * verified; never from the worker's own checkout, unless the sweep says
 * `source: worker`), cached; checks and
 * applies the job's clock and power requests (only where permitted), runs the
 * binary with telemetry sampled beside it, restores the GPU's settings, and
 * hands the outcome to the results queue with the run id as job id.
 * Permanent failures become outcomes too; only transient errors are thrown,
 * for BullMQ to retry.
 *
 * Cancel (moefarm sweep cancel): a job of a cancelled sweep ends as
 * `cancelled` before it starts, or, while it runs, within half a second
 * (cancel-watch.ts): the binary is stopped and the GPU restored as after any
 * run. Each job ends with one log line: run, sweep, status, wall time, worker.
 *
 * Shutdown (SIGINT/SIGTERM): stop taking jobs and finish the one in flight
 * (its `finally` restores the GPU); a second signal kills the run, restores
 * the GPU and leaves the job to BullMQ's stalled-job check, which hands it to
 * another worker. A process killed outright leaves a marker file that the
 * next start on that GPU restores from, and a lease naming its run's process
 * group, which any worker on the host kills once that process is proven dead
 * (worker/lease.ts). Nothing is lost either way.
 *
 * Identity: host/pool/device (or --name), numbered `#2`, `#3` … while a live
 * worker holds the plain one (worker/heartbeat.ts claimWorkerId).
 *
 * Several GPUs (--gpus 0,1,2,3 | all): the worker owns every GPU of its list
 * (a lock per GPU, worker/gpu/lock.ts: no other worker of the host may take
 * one of them) and listens on its pool's queues for jobs of 1 … n GPUs
 * (src/queue/names.ts), one job at a time. A job of g GPUs runs on the first
 * g of the list (CUDA_VISIBLE_DEVICES), each of them set up, sampled and
 * restored as a single GPU is; the topology between them (worker/gpu/topology.ts)
 * is recorded with the run.
 */
import { join } from 'node:path';
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { queuePrefix } from '../src/config.js';
import { RESULTS_QUEUE, runQueueName, workerLiveKey } from '../src/queue/names.js';
import { RESULT_JOB_OPTIONS } from '../src/queue/options.js';
import { outcomeLogFields, RunJobSchema, type BuiltOutput, type Outcome, type RunJob, type WorkerIdentity } from '../src/schema/job.js';
import { pointGpus } from '../src/schema/sweep.js';
import { UsageError } from '../src/errors.js';
import type { Telemetry } from '../src/schema/telemetry.js';
import type { Topology } from '../src/schema/topology.js';
import { formatIssues } from '../src/schema/issues.js';
import { binaryArgs, processUnits, type ProcessUnit } from './args.js';
import { ensureBinary, type BuildBackend, type BuildSource, type BuiltBinary } from './build.js';
import { mergeRounds, roundOrder } from './rounds.js';
import { BundleError, readBundle } from '../src/source/bundle.js';
import { describeDir, type SourceMeta } from '../src/source/describe.js';
import { fetchBundle } from '../src/source/store.js';
import type { BenchOutput } from '../src/schema/bench-output.js';
import { PermanentRunError } from './errors.js';
import { probeGpu, readPowerSource, type GpuCapabilities } from './gpu/capabilities.js';
import { GpuController, describe, type Applied } from './gpu/control.js';
import { runFlags } from './gpu/flags.js';
import { TelemetrySampler, median, mergeTelemetry } from './gpu/telemetry.js';
import { GpuTakenError, acquireGpus, type GpuLock } from './gpu/lock.js';
import { probeTopology, topologyOf } from './gpu/topology.js';
import { CancelWatch } from './cancel-watch.js';
import { Heartbeat, claimWorkerId, type WorkerSnapshot } from './heartbeat.js';
import { createLogger, type Log } from '../src/util/log.js';
import { workerIdentity } from './identity.js';
import { WorkerLease, reapDeadLeases } from './lease.js';
import { runBinary, type BinaryRun } from './run-binary.js';

interface Built {
  name: string;
  built: BuiltBinary;
  /** What this worker's own checkout was (source: worker); null for a bundle (the submitter recorded it). */
  source: SourceMeta | null;
}

type MeasuredBuild = BuiltOutput & { wallMs: number; stderrTail: string };

export interface WorkerOptions {
  /** Redis connection for the BullMQ worker (blocking) and the results producer. */
  connection: Redis;
  pool: string;
  backend: BuildBackend;
  /** GPU this worker owns (CUDA_VISIBLE_DEVICES is set to it for the run); null: no GPU. */
  gpu: number | null;
  /** GPUs this worker owns (--gpus), in the order jobs use them; when given, `gpu` is ignored. */
  gpus?: number[];
  /** cuda: sm_90a | sm_89 | sm_80. */
  arch: string;
  csrc: string;
  cache: string;
  /** The host's state folder (leases, GPU-control records); default `<cache>/state`. */
  stateDir?: string;
  /** Name of this worker (default host/pool/device). */
  name?: string;
  /** May lock clocks / set the power limit for points that ask (default false). */
  allowClockControl?: boolean;
  allowPowerControl?: boolean;
  /** Sample GPU telemetry beside each run (default true when there is a GPU). */
  telemetry?: boolean;
  /** How long a job waiting for a power source sleeps between checks, ms (default 30000). */
  powerRetryMs?: number;
  /** Honour jobs' TEST ONLY hooks (default false). */
  testHooks?: boolean;
  /** Lock duration, ms: a killed worker's job is taken over after about this long (default 30000). */
  lockDurationMs?: number;
  /** Stall checks a job may fail before it is given up (default 2). */
  maxStalledCount?: number;
  /** How often a running job checks whether its sweep was cancelled, ms (default 500). */
  cancelPollMs?: number;
  /** Where the worker logs (default: human-readable lines on stderr). */
  log?: Log;
}

export class FarmWorker {
  /** One BullMQ worker per GPU count this worker can serve (1 … n), each on its queue; one job at a time over all. */
  private workers: Worker[] = [];
  private results: Queue | null = null;
  private identity: WorkerIdentity | null = null;
  /** The GPUs this worker owns, in the order jobs use them. */
  private readonly gpuList: number[];
  /** Each owned GPU that answered nvidia-smi, by index. */
  private readonly capsByGpu = new Map<number, GpuCapabilities>();
  private readonly controls = new Map<number, GpuController>();
  private locks: GpuLock[] = [];
  /** `nvidia-smi topo -m` of the host, when the worker owns several GPUs. */
  private topoMatrix: { gpus: number[]; links: Record<string, string> } | null = null;
  /** A job is running (on any of the queues): the others wait. */
  private running = false;
  /** Resolved when the job in flight ends: the next one's turn (see process). */
  private gate: Promise<void> = Promise.resolve();
  /** Jobs fetched and waiting for their turn. */
  private waiting = 0;
  private heartbeat: Heartbeat | null = null;
  private lease: WorkerLease | null = null;
  private closing: Promise<void> | null = null;
  private busyWith: string | null = null;
  private runAbort: AbortController | null = null;
  private readonly startedAt = Date.now();
  private readonly log: Log;
  processed = 0;

  constructor(private readonly opts: WorkerOptions) {
    this.log = opts.log ?? createLogger({ name: 'worker' });
    this.gpuList = opts.gpus ? [...opts.gpus] : opts.gpu !== null ? [opts.gpu] : [];
    if (new Set(this.gpuList).size !== this.gpuList.length) throw new UsageError(`--gpus: GPU listed twice (${this.gpuList.join(',')})`);
  }

  /** The first GPU's capabilities (the one a one-GPU job runs on); null without a GPU or when it did not answer. */
  get capabilities(): GpuCapabilities | null {
    return this.gpuList.length ? (this.capsByGpu.get(this.gpuList[0]!) ?? null) : null;
  }

  /** Every owned GPU that answered nvidia-smi, in the order jobs use them. */
  get allCapabilities(): GpuCapabilities[] {
    return this.gpuList.flatMap((g) => this.capsByGpu.get(g) ?? []);
  }

  /** The topology between all the GPUs this worker owns; null with fewer than two. */
  get topology(): Topology | null {
    return this.gpuList.length > 1 ? topologyOf(this.topoMatrix, this.gpuList) : null;
  }

  /** Most GPUs one job may take here: the GPUs owned (a worker without a GPU serves one-GPU jobs, as always). */
  get gpuCount(): number {
    return Math.max(1, this.gpuList.length);
  }

  async start(): Promise<WorkerIdentity> {
    const identity = await workerIdentity({
      pool: this.opts.pool,
      backend: this.opts.backend,
      gpuIndex: this.gpuList[0] ?? null,
      gpuIndices: this.gpuList,
      ...(this.opts.name ? { name: this.opts.name } : {}),
    });
    // One id per live worker: a second worker on this host, pool and device (or with the same --name) gets `#2`.
    identity.id = await claimWorkerId(this.opts.connection, identity.id, (id) => this.snapshot({ ...identity, id }));
    this.identity = identity;
    // Every GPU is this worker's alone (worker/gpu/lock.ts) before anything touches one: a second worker
    // asking for a GPU that a live worker owns refuses to start, and gives its id back.
    try {
      this.locks = acquireGpus(this.gpuList, identity.id);
    } catch (err) {
      await this.opts.connection.del(workerLiveKey(identity.id)).catch(() => 0);
      if (err instanceof GpuTakenError) throw new UsageError(`worker ${identity.id}: ${err.message}`);
      throw err;
    }
    for (const gpu of this.gpuList) {
      const caps = await probeGpu({ index: gpu, allowClockControl: this.opts.allowClockControl ?? false, allowPowerControl: this.opts.allowPowerControl ?? false });
      if (!caps) {
        this.log.warn({ gpu }, `GPU ${gpu} did not answer nvidia-smi: no telemetry, no clock or power control`);
        continue;
      }
      this.capsByGpu.set(gpu, caps);
      const control = new GpuController(caps, this.identity.id, this.stateDir());
      this.controls.set(gpu, control);
      const stale = await control.recoverFromMarker();
      if (stale) this.log.warn({ gpu: stale.gpu, pid: stale.pid }, `restored GPU ${stale.gpu} settings left by process ${stale.pid} (marker from ${stale.at})`);
    }
    if (this.gpuList.length > 1) {
      this.topoMatrix = await probeTopology();
      if (!this.topoMatrix) this.log.warn({ gpus: this.gpuList }, `nvidia-smi topo -m gave no GPU matrix: the links between GPUs ${this.gpuList.join(',')} are recorded as unknown ('?')`);
    }
    this.reapDeadWorkers();
    this.lease = WorkerLease.create(this.stateDir(), this.identity.id);
    if (this.lease) this.lease.write(null);
    else this.log.warn({ event: 'lease' }, 'no /proc on this system: a run left behind by a worker killed outright is not cleaned up');
    const prefix = queuePrefix();
    this.results = new Queue(RESULTS_QUEUE, { connection: this.opts.connection, prefix });
    this.heartbeat = new Heartbeat(this.opts.connection, () => this.snapshot(this.identity!));
    await this.heartbeat.start();
    // A queue per GPU count (src/queue/names.ts): jobs of 1 … n GPUs, never more than this worker owns.
    for (let gpus = 1; gpus <= this.gpuCount; gpus++) {
      const w = new Worker(runQueueName(this.opts.pool, gpus), (job, token, signal) => this.process(job, token, signal), {
        connection: this.opts.connection,
        prefix,
        concurrency: 1,
        lockDuration: this.opts.lockDurationMs ?? 30_000,
        stalledInterval: Math.max(1000, Math.floor((this.opts.lockDurationMs ?? 30_000) / 2)),
        maxStalledCount: this.opts.maxStalledCount ?? 2,
      });
      w.on('error', (err) => this.log.error({ worker: this.identity?.id ?? null, reason: err.message }, `queue: ${err.message}`));
      this.workers.push(w);
    }
    return this.identity;
  }

  private snapshot(identity: WorkerIdentity): WorkerSnapshot {
    return {
      id: identity.id,
      state: 'running',
      lastBeat: Date.now(),
      startedAt: this.startedAt,
      busyWith: this.busyWith,
      processed: this.processed,
      identity,
      capabilities: this.capabilities,
      // Several GPUs: each one's capabilities, the count jobs may ask for, and the links between them.
      gpuCount: this.gpuList.length,
      gpus: this.allCapabilities,
      topology: this.topology,
      powerSource: readPowerSource(),
    };
  }

  private stateDir(): string {
    return this.opts.stateDir ?? join(this.opts.cache, 'state');
  }

  private async process(job: Job, token: string | undefined, signal?: AbortSignal): Promise<string> {
    const parsed = RunJobSchema.safeParse(job.data);
    if (!parsed.success) {
      // Without a valid payload there is no run to report under; fail the job at once (retrying changes nothing):
      // the collector's reconciler records it from the failed set, with this reason.
      throw new UnrecoverableError(`invalid job payload: ${formatIssues(`job ${job.id}`, parsed.error.issues.slice(0, 3))}`);
    }
    const data = parsed.data;
    // One job at a time over all this worker's queues: while one runs the other queues' BullMQ workers are
    // paused; a job one of them fetched before the pause took effect waits here for its turn (its lock is
    // kept fresh meanwhile), rather than going back to the queue (a delayed job would look like an empty
    // queue to --once).
    const turn = this.gate;
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    this.waiting++;
    await turn;
    this.waiting--;
    this.running = true;
    await this.pauseOthers(job.queueName);
    try {
      return await this.processOne(job, data, token, signal);
    } finally {
      this.running = false;
      release();
      // The next job in line pauses the others itself; only the last one lets them fetch again.
      if (this.waiting === 0) await this.resumeAll();
    }
  }

  private async pauseOthers(queueName: string): Promise<void> {
    await Promise.all(this.workers.filter((w) => w.name !== queueName).map((w) => w.pause(true).catch(() => undefined)));
  }

  private async resumeAll(): Promise<void> {
    if (this.closing) return;
    await Promise.all(this.workers.map((w) => w.resume().catch(() => undefined)));
  }

  private async processOne(job: Job, data: RunJob, token: string | undefined, signal?: AbortSignal): Promise<string> {
    const first = data.points[0]!.point;
    const startedAt = Date.now();
    this.reapDeadWorkers();
    let outcome: Outcome;
    let applied: Applied | null = null;
    this.busyWith = data.runId;
    let cancel: CancelWatch | null = null;
    // The GPUs this job runs on: the first `gpus` of the worker's list.
    const used = this.gpuList.slice(0, pointGpus(first));
    const controls = used.flatMap((g) => this.controls.get(g) ?? []);
    try {
      cancel = await CancelWatch.start(this.opts.connection, data.sweepId, this.opts.cancelPollMs);
      cancel.throwIfCancelled('before it started');
      this.checkRequests(data, used);
      if (first.power === 'ac' || first.power === 'battery') await this.awaitPowerSource(job, token, data, first.power);
      const builds = await this.buildAll(data);
      cancel.throwIfCancelled('while it ran');
      // Every GPU of the job gets the point's settings (each one's marker first); the first one's are reported.
      for (const c of controls) {
        const a = await c.apply(first.clock, first.power);
        applied ??= a;
      }
      const { outputs, telemetry, smClockMhz } = await this.measure(data, builds, used, [cancel.signal, ...(signal ? [signal] : [])]);
      const flagged = runFlags({ summary: telemetry?.summary ?? null, requestedSmMhz: applied?.requestedSmMhz ?? null, smClockMhz });
      const device = outputs[0]!.output.device;
      for (const g of used) {
        const caps = this.capsByGpu.get(g);
        if (caps && caps.smCount === null && typeof device.sm_count === 'number') caps.smCount = device.sm_count;
      }
      outcome = {
        ...this.base(job, data, used, applied, telemetry, smClockMhz),
        status: 'done',
        reason: flagged.notes.length ? flagged.notes.join('; ') : null,
        flags: flagged.flags,
        builds: outputs.map(({ name, info, output, source }) => ({ name, info, output, source })),
        stdoutTail: null,
        stderrTail: outputs.map((o) => o.stderrTail).filter(Boolean).join('\n') || null,
        wallMs: outputs.reduce((n, o) => n + o.wallMs, 0),
        startedAt,
        finishedAt: Date.now(),
      };
    } catch (caught) {
      if (caught instanceof DelayedError) throw caught;
      // A cancel that came while the job ran explains whatever the run died of (the binary stopped mid-way).
      const err = cancel?.at != null && !(caught instanceof PermanentRunError && caught.status === 'cancelled') ? cancel.error('while it ran') : caught;
      if (!(err instanceof PermanentRunError)) {
        // Transient: BullMQ retries (or, after a second signal, the stalled-job check hands it on). Said in the job's line.
        const reason = err instanceof Error ? err.message : String(err);
        this.log.warn(
          { event: 'job', runId: data.runId, sweepId: data.sweepId, pool: this.opts.pool, status: 'retrying', wallMs: Date.now() - startedAt, worker: this.identity?.id ?? null, attempt: job.attemptsMade + 1, reason },
          `${data.runId} not finished, left to BullMQ: ${reason}`,
        );
        throw err;
      }
      outcome = {
        ...this.base(job, data, used, applied, null, null),
        status: err.status,
        reason: err.message,
        builds: [],
        stdoutTail: err.stdoutTail,
        stderrTail: err.stderrTail,
        // The failing binary's own time where one ran (as a finished run records its binaries'), else the job's so far.
        wallMs: err.binaryMs ?? Date.now() - startedAt,
        startedAt,
        finishedAt: Date.now(),
      };
    } finally {
      cancel?.stop();
      this.busyWith = null;
      await this.restoreAll();
    }
    // The run id is the result's job id: a retried hand-off adds nothing.
    await this.results!.add('outcome', outcome, { ...RESULT_JOB_OPTIONS, jobId: data.runId });
    this.processed++;
    this.logJob(outcome, data);
    return outcome.status;
  }

  /** The job's one log line: what ran, how it ended, how long it took, where. */
  private logJob(o: Outcome, data: RunJob): void {
    const fields = {
      event: 'job',
      ...outcomeLogFields(o),
      wallMs: Math.round(Date.now() - (o.startedAt ?? Date.now())),
      binaryMs: o.wallMs === null ? null : Math.round(o.wallMs),
      worker: this.identity?.id ?? null,
      attempt: o.attempts,
      builds: data.builds.map((b) => b.name),
      variants: data.points.map((p) => p.point.variant),
      ...(o.flags && o.flags.length ? { flags: o.flags } : {}),
      ...(o.reason ? { reason: o.reason } : {}),
    };
    const msg = `${o.runId} ${o.status}`;
    if (o.status === 'done') this.log.info(fields, msg);
    else this.log.warn(fields, msg);
  }

  /**
   * Every build of the job, from its own source: a bundle fetched from Redis by hash and verified
   * before anything is written (a cached build of that hash needs no fetch), or, for `source: worker`,
   * this worker's checkout. A missing or bad bundle ends the run as `bad-source`: the worker never
   * builds something else in its place.
   */
  private async buildAll(data: RunJob): Promise<Built[]> {
    const several = data.builds.length > 1;
    const out: Built[] = [];
    for (const b of data.builds) {
      let source: BuildSource;
      let meta: SourceMeta | null = null;
      if ('bundle' in b.source) {
        const { bundle: hash, commit } = b.source;
        source = {
          hash,
          load: async () => {
            const blob = await fetchBundle(this.opts.connection, hash);
            if (blob === null) {
              throw new PermanentRunError('bad-source', `build ${b.name}: source bundle ${hash.slice(0, 12)} is not in Redis (never stored, or removed after its sweeps finished); nothing else is built in its place`);
            }
            try {
              return { snapshot: await readBundle(blob, hash), gitCommit: commit };
            } catch (err) {
              if (err instanceof BundleError) throw new PermanentRunError('bad-source', `build ${b.name}: ${err.message}; nothing was built`);
              throw err;
            }
          },
        };
      } else {
        const described = describeDir(this.opts.csrc, `worker ${this.identity?.id ?? '?'} (${this.opts.csrc})`);
        meta = described.meta;
        const commit = meta.gitCommit === null ? null : meta.gitCommit + (meta.dirty ? '-dirty' : '');
        source = { hash: described.snapshot.hash, load: async () => ({ snapshot: described.snapshot, gitCommit: commit }) };
      }
      try {
        const built = await ensureBinary({ source, cache: this.opts.cache, backend: this.opts.backend, arch: this.opts.arch, extraFlags: b.flags });
        out.push({ name: b.name, built, source: meta });
      } catch (err) {
        if (several && err instanceof PermanentRunError && err.status !== 'bad-source') {
          throw new PermanentRunError(err.status, `build ${b.name}: ${err.message}`, err.stdoutTail, err.stderrTail);
        }
        throw err;
      }
    }
    return out;
  }

  /**
   * Runs the binaries with the telemetry sampler around them. One process (one build, each variant
   * once): its variants interleaved in rounds by the binary. Several processes (builds, or settings of
   * one variant's tunables): each process once per round, their order rotated each round, all within
   * the job's one timeout; each process's rounds merged into one output (rounds.ts).
   */
  /** Runs the job's builds; `smClockMhz` is the median SM clock the binary measured in the kernel across every result (null if none reported). */
  private async measure(data: RunJob, builds: Built[], used: number[], stops: AbortSignal[]): Promise<{ outputs: MeasuredBuild[]; telemetry: Telemetry | null; smClockMhz: number | null }> {
    // A sampler per GPU of the job (each its own nvidia-smi -i N), as for one.
    const samplers = this.opts.telemetry === false ? [] : used.filter((g) => this.capsByGpu.has(g)).map((g) => ({ index: g, sampler: new TelemetrySampler(g) }));
    // The binary starts only after the first sample (or the sampler gave up): see TelemetrySampler.start.
    const started = await Promise.all(samplers.map((s) => s.sampler.start()));
    started.forEach((ok, i) => {
      if (!ok) this.log.warn({ runId: data.runId, gpu: samplers[i]!.index }, `${data.runId}: nvidia-smi gave no telemetry sample of GPU ${samplers[i]!.index} before the run; running without one`);
    });
    const stopSamplers = async (window: [number, number] | null, smClockMhz: number | null) =>
      Promise.all(samplers.map(async (s) => ({ index: s.index, telemetry: await s.sampler.stop(window, smClockMhz) })));
    this.runAbort = new AbortController();
    const signals = [this.runAbort.signal, ...stops];
    const deadline = Date.now() + data.timeoutS * 1000;
    const env: Record<string, string> = used.length ? { CUDA_VISIBLE_DEVICES: used.join(',') } : {};
    const hooks = this.opts.testHooks ? (data.test ?? null) : null;
    const units = processUnits(data);
    const builtOf = new Map(builds.map((b) => [b.name, b]));
    const once = async (u: ProcessUnit, rounds?: number): Promise<BinaryRun> => {
      const b = builtOf.get(u.build)!;
      const args = binaryArgs(data, hooks, { unit: u, ...(rounds === undefined ? {} : { rounds }) });
      for (const s of signals) s.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0) throw new PermanentRunError('timeout', `ran past the job's timeout of ${data.timeoutS} s (${units.length} processes x ${data.rounds} rounds)`);
      return runBinary(b.built.path, args, { timeoutMs: left, signal: AbortSignal.any(signals), env, onSpawn: (pgid) => this.lease?.write({ pgid }) });
    };
    const outputs: MeasuredBuild[] = [];
    try {
      if (units.length === 1) {
        const u = units[0]!;
        const b = builtOf.get(u.build)!;
        const run = await once(u);
        outputs.push({ name: b.name, info: b.built.info, output: run.output, source: b.source, wallMs: run.wallMs, stderrTail: run.stderrTail });
      } else {
        const perUnit = new Map<ProcessUnit, BinaryRun[]>(units.map((u) => [u, []]));
        for (let round = 0; round < data.rounds; round++) {
          for (const u of roundOrder(units, round)) perUnit.get(u)!.push(await once(u, 1));
        }
        for (const u of units) {
          const b = builtOf.get(u.build)!;
          const runs = perUnit.get(u)!;
          outputs.push({
            name: b.name,
            info: b.built.info,
            output: mergeRounds(runs.map((r) => r.output)),
            source: b.source,
            wallMs: runs.reduce((n, r) => n + r.wallMs, 0),
            stderrTail: runs.at(-1)?.stderrTail ?? '',
          });
        }
      }
    } catch (err) {
      await stopSamplers(null, null);
      if (builds.length > 1 && err instanceof PermanentRunError && !err.message.startsWith('build ')) {
        throw new PermanentRunError(err.status, `${err.message} (while interleaving builds ${builds.map((b) => b.name).join(', ')})`, err.stdoutTail, err.stderrTail, err.binaryMs);
      }
      if (builds.length === 1 && units.length > 1 && err instanceof PermanentRunError) {
        throw new PermanentRunError(err.status, `${err.message} (while interleaving ${units.length} processes: tunable settings of one variant run in processes of their own)`, err.stdoutTail, err.stderrTail, err.binaryMs);
      }
      throw err;
    } finally {
      this.runAbort = null;
      this.lease?.write(null);
    }
    const smClockMhz = median(outputs.flatMap((o) => o.output.results.flatMap((r) => r.sm_clock_mhz ?? [])));
    if (samplers.length === 0) return { outputs, telemetry: null, smClockMhz };
    return { outputs, telemetry: mergeTelemetry(await stopSamplers(timedWindow(outputs.map((o) => o.output)), smClockMhz)), smClockMhz };
  }

  private base(job: Job, data: RunJob, used: number[], applied: Applied | null, telemetry: Telemetry | null, smClockMhz: number | null) {
    const p = data.points[0]!.point;
    const caps = used.length ? (this.capsByGpu.get(used[0]!) ?? null) : null;
    const several = used.length > 1 ? used.map((g) => this.capsByGpu.get(g) ?? null) : null;
    return {
      runId: data.runId,
      sweepId: data.sweepId,
      pool: this.opts.pool,
      job: data,
      attempts: job.attemptsMade + 1,
      worker: this.identity,
      env: {
        backend: this.opts.backend,
        clock: p.clock,
        power: p.power,
        gpu: caps?.name ?? this.identity?.gpu ?? null,
        gpuUuid: caps?.uuid ?? null,
        gpuIndex: caps?.index ?? null,
        driver: caps?.driver ?? null,
        // Several GPUs: how many, which, and how they are linked (the links are part of the environment group).
        ...(several
          ? {
              gpus: used.length,
              gpuIndices: used,
              gpuUuids: several.map((c) => c?.uuid ?? null),
              gpuNames: several.map((c) => c?.name ?? null),
              topology: topologyOf(this.topoMatrix, used),
            }
          : {}),
        powerSource: readPowerSource(),
        requestedSmMhz: applied?.requestedSmMhz ?? null,
        powerLimitW: applied?.powerLimitW ?? caps?.powerLimitW ?? null,
        telemetrySmMhz: telemetry?.summary?.sm_mhz?.median ?? null,
        smClockMhz,
      },
      telemetry,
      flags: [] as string[],
    };
  }

  /** Requests this worker cannot honour end the run as unsatisfiable: never a crash, never run under other conditions. */
  private checkRequests(job: RunJob, used: number[]): void {
    const id = this.identity?.id ?? 'this worker';
    for (const { point } of job.points) {
      if (point.backend !== this.opts.backend) {
        throw new PermanentRunError('unsatisfiable', `worker ${id} runs the ${this.opts.backend} backend, the point asks for ${point.backend}`);
      }
      // Routing keeps this from happening (src/queue/names.ts); a job put in the wrong queue by hand ends here.
      if (pointGpus(point) > this.gpuCount) {
        throw new PermanentRunError('unsatisfiable', `worker ${id} owns ${this.gpuList.length} GPU(s)${this.gpuList.length ? ` (${this.gpuList.join(',')})` : ''}, the point asks for ${pointGpus(point)}`);
      }
      const controls = used.flatMap((g) => this.controls.get(g) ?? []);
      if (controls.length > 0 && controls.length === used.length) {
        for (const c of controls) c.check(point.clock, point.power);
        continue;
      }
      if (controls.length > 0) {
        const silent = used.filter((g) => !this.controls.has(g));
        if (point.clock !== 'default' || typeof point.power === 'object') {
          throw new PermanentRunError('unsatisfiable', `worker ${id}: clock or power control requested, but GPU ${silent.join(',')} did not answer nvidia-smi`);
        }
        continue;
      }
      if (point.clock !== 'default') throw new PermanentRunError('unsatisfiable', `worker ${id}: clock ${describe(point.clock)} requested, but this worker has no GPU it can control`);
      if (typeof point.power === 'object') throw new PermanentRunError('unsatisfiable', `worker ${id}: power limit ${point.power.limit} W requested, but this worker has no GPU it can control`);
    }
  }

  /** A power-source requirement not met now: wait (the job is delayed and retried) until the sweep's deadline. */
  private async awaitPowerSource(job: Job, token: string | undefined, data: RunJob, want: 'ac' | 'battery'): Promise<void> {
    const now = readPowerSource();
    if (now === want) return;
    const deadline = data.submittedAt + data.powerWaitS * 1000;
    const id = this.identity?.id ?? 'this worker';
    if (Date.now() >= deadline) {
      throw new PermanentRunError('unsatisfiable', `worker ${id}: power source '${want}' required, but it was '${now}' until the deadline (${data.powerWaitS} s after submission)`);
    }
    const retry = Math.min(this.opts.powerRetryMs ?? 30_000, Math.max(0, deadline - Date.now()));
    this.log.info({ runId: data.runId, sweepId: data.sweepId, want, now }, `${data.runId}: waiting for power source '${want}' (now '${now}'), next check in ${Math.round(retry / 1000)} s`);
    await job.moveToDelayed(Date.now() + retry, token);
    throw new DelayedError();
  }

  /** Runs left behind by workers on this host that are proven dead (worker/lease.ts) are killed; live ones never. */
  private reapDeadWorkers(): void {
    for (const r of reapDeadLeases(this.stateDir())) {
      if (r.killedGroup !== null) this.log.warn({ event: 'reap', pgid: r.killedGroup, worker: r.workerId, pid: r.pid }, `killed run (process group ${r.killedGroup}) left behind by worker ${r.workerId} (pid ${r.pid}), which died`);
    }
  }

  /**
   * Resolves when none of this worker's queues has a job left for it: each queue's BullMQ worker said
   * `drained` since it last took a job (BullMQ says it once per emptying, so each queue is tracked apart).
   */
  drained(): Promise<void> {
    return new Promise((resolveDrained) => {
      const empty = new Set<Worker>();
      for (const w of this.workers) {
        w.on('active', () => empty.delete(w));
        w.on('drained', () => {
          empty.add(w);
          if (empty.size === this.workers.length && !this.running) resolveDrained();
        });
      }
    });
  }

  /** Every GPU that holds a job's settings back to what it had; each one tried, the first failure thrown after. */
  private async restoreAll(): Promise<void> {
    let first: unknown = null;
    for (const c of this.controls.values()) {
      if (!c.holdsSettings) continue;
      try {
        await c.restore();
      } catch (err) {
        first ??= err;
        this.log.error({ reason: (err as Error).message }, `restoring the GPU: ${(err as Error).message}`);
      }
    }
    if (first) throw first;
  }

  /** Second signal: kill the run in flight and put the GPUs back now. The job is left for the stalled-job check. */
  async abortAndRestore(): Promise<void> {
    this.runAbort?.abort();
    try {
      await this.restoreAll();
    } catch {
      /* said per GPU */
    }
  }

  /** Idempotent. Graceful unless `force`: the job in flight finishes and reports first. */
  close(force = false): Promise<void> {
    this.closing ??= (async () => {
      try {
        await Promise.all(this.workers.map((w) => w.close(force)));
      } catch (err) {
        this.log.error({ reason: (err as Error).message }, `close: ${(err as Error).message}`);
      }
      try {
        await this.restoreAll();
      } catch {
        /* said per GPU */
      }
      for (const l of this.locks) {
        try {
          l.release();
        } catch (err) {
          this.log.error({ reason: (err as Error).message }, `releasing the lock of GPU ${l.gpu}: ${(err as Error).message}`);
        }
      }
      try {
        await this.heartbeat?.stop();
      } catch {
        /* Redis may be gone */
      }
      try {
        this.lease?.release();
      } catch (err) {
        this.log.error({ reason: (err as Error).message }, (err as Error).message);
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

/** The binaries' timed window (ms since epoch, all builds and variants together) when they report one. */
function timedWindow(outputs: BenchOutput[]): [number, number] | null {
  const windows = outputs.flatMap((o) => o.results.map((r) => r.timed_window_unix_ms)).filter((w): w is [number, number] => Array.isArray(w));
  if (windows.length === 0) return null;
  return [Math.min(...windows.map((w) => w[0])), Math.max(...windows.map((w) => w[1]))];
}
