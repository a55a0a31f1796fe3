/**
 * What travels on the queues: the run job (coordinator → worker) and the
 * outcome message (worker → collector). Validated on both ends.
 */
import { z } from 'zod';
import { BuildFlagSchema, ClockSchema, DEFAULT_BUILD, PointSchema, PowerSchema } from './sweep.js';
import { BACKENDS } from './variants.js';
import { BenchOutputSchema } from './bench-output.js';
import { TopologySchema } from './topology.js';
import { SourceMetaSchema } from '../source/describe.js';
import { UsageError } from '../errors.js';

/** A source hash (source/inputs.ts): sha256, hex. */
export const SourceHashSchema = z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected a source hash (64 hex digits)' });

/**
 * One build of a job: where its source comes from and its extra flags. `bundle` names a source bundle in
 * Redis by hash (the worker builds exactly that, or nothing); `worker` is the worker's own checkout.
 * The commit goes into the binary through make (a -D define inside a shell recipe), so it is held to
 * hex digits; the flags are checked against the sweep schema's allow-list again, for the same reason.
 */
export const JobBuildSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  source: z.union([
    z.strictObject({ bundle: SourceHashSchema, commit: z.string().regex(/^[0-9a-f]{40}(-dirty)?$/).nullable().default(null) }),
    z.strictObject({ worker: z.literal(true) }),
  ]),
  flags: z.array(BuildFlagSchema).default([]),
});
export type JobBuild = z.output<typeof JobBuildSchema>;

/** One point of a job (and of Run.params): its hash, its parameters, and the build that runs it. */
export const JobPointSchema = z.strictObject({ hash: z.string(), point: PointSchema, build: z.string().default(DEFAULT_BUILD) });
export const RunParamsSchema = z.array(JobPointSchema);

export const RunJobSchema = z.strictObject({
  runId: z.string(),
  sweepId: z.string(),
  groupHash: z.string(),
  rep: z.int().nonnegative(),
  seed: z.int().nonnegative(),
  timeoutS: z.int().positive(),
  powerWaitS: z.int().nonnegative(),
  /** A job with gpus > 1: how long after submittedAt it may wait for a live worker with that many GPUs (s). */
  gpusWaitS: z.int().nonnegative().optional(),
  /** First time the job was enqueued (ms since epoch): the power-source deadline counts from here. */
  submittedAt: z.number(),
  rounds: z.int().positive(),
  /** The builds this job runs (one, or with interleave every build of the point), each in every round. */
  builds: z.array(JobBuildSchema).min(1).max(16),
  points: z.array(JobPointSchema).min(1),
  /**
   * The sha256 of the sweep's definition stored once in Redis (queue/sweep-definition.ts): the collector
   * records the sweep's plan from it wherever the sweep was submitted from. Absent: none travelled.
   */
  definition: SourceHashSchema.optional(),
  /** TEST ONLY: make the native run misbehave. Honoured only by a worker started with test hooks enabled. */
  test: z
    .strictObject({
      sleepMs: z.int().nonnegative().optional(),
      output: z.enum(['garbage', 'partial', 'nan', 'exit3']).optional(),
    })
    .optional(),
}).superRefine((job, ctx) => {
  const why = jobBuildsConsistent(job);
  if (why) ctx.addIssue({ code: 'custom', path: ['builds'], message: why });
});
export type RunJob = z.output<typeof RunJobSchema>;
/** Every point names a build of the job, and every build has a point. */
export function jobBuildsConsistent(job: Pick<RunJob, 'builds' | 'points'>): string | null {
  const names = new Set(job.builds.map((b) => b.name));
  if (names.size !== job.builds.length) return 'a build is listed twice';
  const missing = job.points.find((p) => !names.has(p.build));
  if (missing) return `point ${missing.hash} names build '${missing.build}', which the job does not list`;
  const idle = job.builds.find((b) => !job.points.some((p) => p.build === b.name));
  return idle ? `build '${idle.name}' has no point` : null;
}
export type RunJobInput = z.input<typeof RunJobSchema>;

/**
 * Terminal states of a run. Everything but `done` is a failure with a reason. `cancelled`: the sweep was
 * cancelled (moefarm sweep cancel) before the run had another outcome; the only outcome a later one may
 * replace, and only a `done` (a result produced before the cancel took effect is kept, never dropped).
 */
export const RUN_STATUSES = [
  'done',
  'failed',
  'timeout',
  'unsatisfiable',
  'check-failed',
  'bad-output',
  'crashed',
  'compile-error',
  'invalid',
  'bad-source',
  /** The collector could not write the outcome: the database refused it (after a few tries) or it was unreadable. */
  'collector-error',
  'cancelled',
] as const;
export const RunStatusSchema = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatusSchema>;

/** Outcomes a retry may run again: every one but `done` (a run with a result is never run twice). */
export const RETRYABLE_STATUSES: readonly RunStatus[] = RUN_STATUSES.filter((s) => s !== 'done');

/**
 * `--status crashed,timeout` of sweep retry (and `--retry` of sweep submit): the outcomes to run again,
 * checked; absent, every outcome but done. Throws a message naming the bad entry.
 */
export function parseRetryStatuses(spec: string | undefined, flag = '--status'): RunStatus[] {
  if (spec === undefined) return [...RETRYABLE_STATUSES];
  const list = spec.split(',').map((x) => x.trim()).filter(Boolean);
  if (list.length === 0) throw new UsageError(`${flag}: expected a comma list of outcomes (${RETRYABLE_STATUSES.join(', ')}), got "${spec}"`);
  for (const x of list) {
    if (x === 'done') throw new UsageError(`${flag}: done runs have their results; a retry runs only runs that ended without one (${RETRYABLE_STATUSES.join(', ')})`);
    if (!(RETRYABLE_STATUSES as readonly string[]).includes(x)) throw new UsageError(`${flag}: "${x}" is not an outcome; expected some of ${RETRYABLE_STATUSES.join(', ')}`);
  }
  return [...new Set(list)] as RunStatus[];
}

export const WorkerIdentitySchema = z.looseObject({
  id: z.string(),
  host: z.string(),
  pool: z.string(),
  backend: z.enum(['cpu', 'cuda']),
  cpu: z.string(),
  gpu: z.string().nullable(),
  gpuIndex: z.int().nullable(),
  driver: z.string().nullable(),
  compiler: z.string(),
  pid: z.int(),
});
export type WorkerIdentity = z.infer<typeof WorkerIdentitySchema>;

export const BuildInfoSchema = z.strictObject({
  key: z.string(),
  backend: z.enum(['cpu', 'cuda']),
  sourceHash: z.string(),
  gitCommit: z.string().nullable(),
  compiler: z.string(),
  flags: z.string(),
  arch: z.string(),
});
export type BuildInfo = z.infer<typeof BuildInfoSchema>;

/** What one build of a run gave: the build, the binary's output, and for a worker-source build what its checkout was. */
export const BuiltOutputSchema = z.strictObject({
  name: z.string(),
  info: BuildInfoSchema,
  output: BenchOutputSchema,
  source: SourceMetaSchema.nullable().default(null),
});
export type BuiltOutput = z.output<typeof BuiltOutputSchema>;

/** What the OS says powers the machine (worker/gpu/capabilities.ts readPowerSource). */
export const POWER_SOURCES = ['ac', 'battery', 'unknown'] as const;
export type PowerSource = (typeof POWER_SOURCES)[number];

/**
 * Run.env: the conditions a run was measured under, as the worker recorded them (worker.ts base()):
 * the settings the job asked for (its first point's clock and power: every point of a job shares them),
 * the GPU, what the worker applied (requestedSmMhz: the SM clock it asked the driver to lock, null at
 * default clocks; powerLimitW) and the SM clock it observed, by two instruments (smClockMhz: median of
 * the binary's own per-sample readings inside the kernel; telemetrySmMhz: nvidia-smi's median over the
 * timed window). Keys a newer worker adds pass through; a key an older one did not write reads null
 * (the several-GPU keys read as absent); keys it wrote under an older name are read by parseRunEnv.
 */
export const RunEnvSchema = z.looseObject({
  backend: z.enum(BACKENDS).nullable().default(null),
  clock: ClockSchema.nullable().default(null),
  power: PowerSchema.nullable().default(null),
  gpu: z.string().nullable().default(null),
  gpuUuid: z.string().nullable().default(null),
  gpuIndex: z.int().nonnegative().nullable().default(null),
  driver: z.string().nullable().default(null),
  powerSource: z.enum(POWER_SOURCES).nullable().default(null),
  requestedSmMhz: z.number().nullable().default(null),
  powerLimitW: z.number().nullable().default(null),
  telemetrySmMhz: z.number().nullable().default(null),
  smClockMhz: z.number().nullable().default(null),
  // Several GPUs only (absent for one): how many, which, and how they are linked (part of the environment group).
  gpus: z.int().positive().optional(),
  gpuIndices: z.array(z.int().nonnegative()).optional(),
  gpuUuids: z.array(z.string().nullable()).optional(),
  gpuNames: z.array(z.string().nullable()).optional(),
  // schema/topology.ts Topology (gpus, links, summary), read leniently: the summary is what an environment
  // group keys on and all that must be there; the other keys pass as written.
  topology: TopologySchema.pick({ summary: true }).loose().optional(),
});
export type RunEnv = z.output<typeof RunEnvSchema>;

/**
 * The names older workers wrote Run.env's clocks under, and their names now. parseRunEnv is the one place
 * that reads them: an old key stands in for its new one where the new one is absent or null (a record
 * written by an older worker, or one whose outcome an older worker sent: the new keys then read null beside
 * the old ones), and is not passed on.
 */
const RUN_ENV_FORMER_KEYS: Readonly<Record<string, keyof RunEnv>> = {
  lockedClockMhz: 'requestedSmMhz',
  kernelSmMhz: 'smClockMhz',
  observedSmMhz: 'telemetrySmMhz',
};

/**
 * Run.env as stored (JSON text), read leniently: no record or bad JSON give null; a key whose value does
 * not fit the schema (written by another version of the worker) reads as absent, the others as written.
 */
export function parseRunEnv(text: string | null): RunEnv | null {
  if (text === null || text === '') return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return null;
  const record: Record<string, unknown> = { ...json };
  for (const [former, now] of Object.entries(RUN_ENV_FORMER_KEYS)) {
    if (!(former in record)) continue;
    if (record[now] === undefined || record[now] === null) record[now] = record[former];
    delete record[former];
  }
  const parsed = RunEnvSchema.safeParse(record);
  if (parsed.success) return parsed.data;
  const misfits = new Set(parsed.error.issues.map((i) => i.path[0]));
  const again = RunEnvSchema.safeParse(Object.fromEntries(Object.entries(record).filter(([k]) => !misfits.has(k))));
  return again.success ? again.data : null;
}

export const OutcomeSchema = z.strictObject({
  runId: z.string(),
  sweepId: z.string(),
  pool: z.string(),
  /** The job as it was queued: lets the collector record a run it has no plan row for. */
  job: RunJobSchema,
  status: RunStatusSchema,
  reason: z.string().nullable(),
  attempts: z.int().nonnegative(),
  worker: WorkerIdentitySchema.nullable(),
  /** One entry per build of the job when the run is done; empty otherwise. */
  builds: z.array(BuiltOutputSchema).default([]),
  flags: z.array(z.string()).default([]),
  env: RunEnvSchema.nullable().default(null),
  telemetry: z.unknown().nullable().default(null),
  stdoutTail: z.string().nullable(),
  stderrTail: z.string().nullable(),
  wallMs: z.number().nullable(),
  startedAt: z.number().nullable(),
  finishedAt: z.number(),
});
export type Outcome = z.input<typeof OutcomeSchema>;
export type ParsedOutcome = z.output<typeof OutcomeSchema>;

/** How a log line names an outcome: the worker's `job` line and the collector's `outcome` line alike. */
export function outcomeLogFields(o: Pick<Outcome, 'runId' | 'sweepId' | 'pool' | 'status'>): { runId: string; sweepId: string; pool: string; status: Outcome['status'] } {
  return { runId: o.runId, sweepId: o.sweepId, pool: o.pool, status: o.status };
}

/** The fields of an outcome that a worker's run fills. */
export type RunPart = Pick<ParsedOutcome, 'worker' | 'builds' | 'flags' | 'env' | 'telemetry' | 'stdoutTail' | 'stderrTail' | 'wallMs' | 'startedAt'>;

/**
 * Those fields with nothing in them: the outcome of a run no worker handed over (a job that failed on every
 * attempt, one no live worker can take, a record the database refused). Spread first; what is known goes over it.
 */
export function nothingRan(): RunPart {
  return { worker: null, builds: [], flags: [], env: null, telemetry: null, stdoutTail: null, stderrTail: null, wallMs: null, startedAt: null };
}
