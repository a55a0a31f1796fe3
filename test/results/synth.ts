/**
 * Controlled results for the results/ tests: a planned sweep whose outcomes
 * are synthesized (samples chosen by the test) and written through the
 * collector's own write (recordOutcome), so compare, history and the report
 * read exactly what a real farm would have stored.
 */
import type { Db } from '../../src/db/client.js';
import { recordPlan } from '../../src/db/plan.js';
import { recordOutcome } from '../../src/db/record.js';
import { sampledRun, type VariantRun } from '../../src/results/load.js';
import { OutcomeSchema, type Outcome } from '../../src/schema/job.js';
import { planSweep, type Plan, type PlannedRun } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { toJob } from '../../src/queue/job.js';
import { summarize } from '../../src/stats/index.js';

let fakeId = 0;
export function fakeRun(samples: number[], extra: Partial<VariantRun> = {}): VariantRun {
  fakeId++;
  return sampledRun({
    runId: `run-${fakeId}`,
    build: 'default',
    groupHash: 'g',
    pointHash: 'p',
    samples,
    rounds: samples.map(() => 0),
    sourceHash: 'src',
    ...extra,
  });
}

export function sweepYaml(opts: { name?: string; repeat?: number; interleave?: boolean; rounds?: number; tokens?: number[]; pool?: string } = {}): string {
  return `
name: ${opts.name ?? 'synth'}
pool: ${opts.pool ?? 'synth'}
repeat: ${opts.repeat ?? 3}
interleave: ${opts.interleave ?? false}
rounds: ${opts.rounds ?? 5}
baseline: {variant: reference}
matrix:
  variant: [reference, fused]
  model: tiny
  tokens: [${(opts.tokens ?? [1]).join(', ')}]
  warmup: 2
  iters: 40
`;
}

export async function plannedSweep(db: Db, yaml: string): Promise<Plan> {
  const plan = planSweep(parseSweepText(yaml, 'synth.yaml'));
  await recordPlan(db, plan, 'synth.yaml');
  return plan;
}

export interface SynthResult {
  variant: string;
  samples: number[];
  rounds?: number[];
  /** The check's relative error (default 0); null: none measured. */
  relErr?: number | null;
}

export interface SynthOutcome {
  results: SynthResult[];
  flags?: string[];
  env?: Record<string, unknown>;
  telemetry?: unknown;
  sourceHash?: string;
  gitCommit?: string | null;
  finishedAt?: number;
}

export function outcomeFor(plan: Plan, run: PlannedRun, o: SynthOutcome): Outcome {
  const finishedAt = o.finishedAt ?? Date.now();
  const p = run.points[0]!.point;
  return {
    runId: run.id,
    sweepId: plan.sweepId,
    pool: plan.sweep.pool,
    job: toJob(plan, run, finishedAt - 1000),
    status: 'done',
    reason: null,
    attempts: 1,
    worker: { id: 'synth-host/synth/cpu', host: 'synth-host', pool: plan.sweep.pool, backend: 'cpu', cpu: 'synthetic cpu', gpu: null, gpuIndex: null, driver: null, compiler: 'g++ 12', pid: 1 },
    builds: [{
      name: run.points[0]!.build,
      info: { key: `synth-${o.sourceHash ?? 'srcA'}`, backend: 'cpu', sourceHash: o.sourceHash ?? 'srcA', gitCommit: o.gitCommit ?? null, compiler: 'g++ 12', flags: '-O3', arch: 'x86-64' },
      output: {
      schema: 'moefarm.bench/1',
      config: { backend: 'cpu', variants: o.results.map((r) => r.variant), hidden: p.hidden, inter: p.inter, experts: p.experts, topk: p.topk, tokens: p.tokens, dtype: p.dtype, warmup: p.warmup, iters: p.iters },
      device: { kind: 'cpu', name: 'synthetic' },
      build: { source_hash: o.sourceHash ?? 'srcA', git_commit: o.gitCommit ?? null, compiler: 'g++ 12', flags: '-O3', arch: 'x86-64' },
      bytes_per_iter: 1000,
      check: { pass: true },
      results: o.results.map((r) => ({
        variant: r.variant,
        check: { pass: true, rel_err: r.relErr === undefined ? 0 : r.relErr, tol: 1e-2 },
        samples_us: r.samples,
        rounds: r.rounds ?? r.samples.map(() => 0),
        sm_clock_mhz: null,
        stats: { ...summarize(r.samples) },
        bandwidth_gbps: null,
      })),
      },
    }],
    flags: o.flags ?? [],
    env: o.env ?? { clock: p.clock, power: p.power, gpu: null, backend: 'cpu' },
    telemetry: o.telemetry ?? null,
    stdoutTail: null,
    stderrTail: null,
    wallMs: 1000,
    startedAt: finishedAt - 1000,
    finishedAt,
  };
}

export async function record(db: Db, plan: Plan, run: PlannedRun, o: SynthOutcome): Promise<void> {
  await recordOutcome(db, OutcomeSchema.parse(outcomeFor(plan, run, o)));
}

/** Telemetry JSON as the worker stores it (src/schema/telemetry.ts), with a given SM clock. */
export function telemetry(smMhz: number, n = 20): unknown {
  const t = Array.from({ length: n }, (_, i) => i * 50);
  return {
    source: 'nvidia-smi',
    samples: {
      t_ms: t,
      sm_mhz: t.map(() => smMhz),
      mem_mhz: t.map(() => 2619),
      power_w: t.map((_, i) => 200 + i),
      temp_c: t.map((_, i) => 40 + i / 4),
      pstate: t.map(() => 'P0'),
      reasons: t.map(() => 0),
    },
    summary: {
      samples: n,
      period_ms: 50,
      window: 'timed',
      sm_mhz: { min: smMhz, median: smMhz, max: smMhz },
      mem_mhz: { min: 2619, median: 2619, max: 2619 },
      power_w: { min: 200, median: 210, max: 219 },
      temp_c: { min: 40, median: 42, max: 45 },
      reasons: [],
      sm_clock_mhz: null,
    },
  };
}
