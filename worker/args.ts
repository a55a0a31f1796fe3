/** A job's points → the native binary's argument arrays (never a shell string), one per process. */
import type { RunJob } from '../src/schema/job.js';
import type { Point } from '../src/schema/sweep.js';
import { tuneArg } from '../src/sweep/tune.js';

export interface TestHooks {
  sleepMs?: number;
  output?: 'garbage' | 'partial' | 'nan' | 'exit3';
}

type JobPoint = RunJob['points'][number];

/**
 * What one process of a job runs: points of one build whose variants are all different (the binary
 * takes each variant once, with one setting of its tunables).
 */
export interface ProcessUnit {
  build: string;
  points: JobPoint[];
}

/**
 * The job's points as processes: per build (in the job's order), each point goes to the first process
 * that does not have its variant yet. A job of one build and no repeated variant is one process, as
 * before; settings of one variant (matrix.tune) interleaved in one job are one process each, and the
 * worker then runs every process once per round, as it does for builds.
 */
export function processUnits(job: Pick<RunJob, 'builds' | 'points'>): ProcessUnit[] {
  const units: ProcessUnit[] = [];
  for (const b of job.builds) {
    const mine: ProcessUnit[] = [];
    for (const p of job.points.filter((x) => x.build === b.name)) {
      const unit = mine.find((u) => !u.points.some((q) => q.point.variant === p.point.variant));
      if (unit) unit.points.push(p);
      else mine.push({ build: b.name, points: [p] });
    }
    units.push(...mine);
  }
  return units;
}

/**
 * Arguments of one process: the points of `opts.unit` (default: every point; a job of one build and
 * distinct variants), with `opts.rounds` rounds (default the job's when there are several variants).
 * `opts.build` (older callers): every point of that build.
 */
export function binaryArgs(job: RunJob, hooks: TestHooks | null, opts: { build?: string; unit?: ProcessUnit; rounds?: number } = {}): string[] {
  const points = opts.unit?.points ?? (opts.build === undefined ? job.points : job.points.filter((p) => p.build === opts.build));
  const first = points[0]!.point;
  const variants = points.map((p) => p.point.variant);
  const args = ['--backend', first.backend, '--variant', variants.join(','), ...shapeArgs(first)];
  args.push('--tokens', String(first.tokens), '--dtype', first.dtype);
  // fp8 scales other than per channel (absent: the binary's default, channel).
  if (first.fp8_scales !== undefined) args.push('--fp8-scales', first.fp8_scales);
  // Several GPUs: the experts split across them, each holding its own `tokens` (csrc/CONTRACT.md --gpus).
  if (first.gpus !== undefined && first.gpus > 1) args.push('--gpus', String(first.gpus));
  args.push('--warmup', String(first.warmup), '--iters', String(first.iters), '--seed', String(job.seed));
  if (first.rotate !== null) args.push('--rotate', String(first.rotate));
  if (first.cold_l2) args.push('--cold-l2');
  // matrix.tune: each tuned variant's values, named for that variant (the binary checks them against its table).
  for (const p of points) if (p.point.tune && Object.keys(p.point.tune).length > 0) args.push('--tune', tuneArg(p.point.variant, p.point.tune));
  const rounds = opts.rounds ?? job.rounds;
  if (variants.length > 1 && rounds > 1) args.push('--rounds', String(rounds));
  if (hooks?.sleepMs) args.push('--test-sleep-ms', String(hooks.sleepMs));
  if (hooks?.output) args.push('--test-output', hooks.output);
  return args;
}

function shapeArgs(p: Point): string[] {
  if (p.model !== null) return ['--model', p.model];  // the preset carries its shared experts
  const shared = p.shared_experts ? ['--shared-experts', String(p.shared_experts), '--shared-inter', String(p.shared_inter)] : [];
  return ['--hidden', String(p.hidden), '--inter', String(p.inter), '--experts', String(p.experts), '--topk', String(p.topk), ...shared];
}
