/**
 * What travels on the queues: the run job (coordinator → worker) and the
 * outcome message (worker → collector). Validated on both ends.
 */
import { z } from 'zod';
import { BuildFlagSchema, PointSchema } from './sweep.js';
import { BenchOutputSchema } from './bench-output.js';

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
  /**
   * Extra compiler flags for the build, checked against the sweep schema's allow-list again here:
   * they reach make, whose recipes run through a shell, so a job written straight into Redis must
   * not be able to carry anything else.
   */
  buildFlags: z.array(BuildFlagSchema).default([]),
  points: z.array(z.strictObject({ hash: z.string(), point: PointSchema })).min(1),
  /** TEST ONLY: make the native run misbehave. Honoured only by a worker started with test hooks enabled. */
  test: z
    .strictObject({
      sleepMs: z.int().nonnegative().optional(),
      output: z.enum(['garbage', 'partial', 'nan', 'exit3']).optional(),
    })
    .optional(),
});
export type RunJob = z.output<typeof RunJobSchema>;
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
  build: BuildInfoSchema.nullable(),
  output: BenchOutputSchema.nullable(),
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
