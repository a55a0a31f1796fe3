/**
 * What travels on the queues: the run job (coordinator → worker) and the
 * outcome message (worker → collector). Validated on both ends.
 */
import { z } from 'zod';
import { BuildFlagSchema, DEFAULT_BUILD, PointSchema } from './sweep.js';
import { BenchOutputSchema } from './bench-output.js';
import { SourceMetaSchema } from '../source/describe.js';

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
  /** First time the job was enqueued (ms since epoch): the power-source deadline counts from here. */
  submittedAt: z.number(),
  rounds: z.int().positive(),
  /** The builds this job runs (one, or with interleave every build of the point), each in every round. */
  builds: z.array(JobBuildSchema).min(1).max(16),
  points: z.array(JobPointSchema).min(1),
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

/** Terminal states of a run. Everything but `done` is a failure with a reason. */
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
] as const;
export const RunStatusSchema = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatusSchema>;

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
  env: z.record(z.string(), z.unknown()).nullable().default(null),
  telemetry: z.unknown().nullable().default(null),
  stdoutTail: z.string().nullable(),
  stderrTail: z.string().nullable(),
  wallMs: z.number().nullable(),
  startedAt: z.number().nullable(),
  finishedAt: z.number(),
});
export type Outcome = z.input<typeof OutcomeSchema>;
export type ParsedOutcome = z.output<typeof OutcomeSchema>;
