/** A job's points → the native binary's argument array (never a shell string). */
import type { RunJob } from '../src/schema/job.js';
import type { Point } from '../src/schema/sweep.js';

export interface TestHooks {
  sleepMs?: number;
  output?: 'garbage' | 'partial' | 'nan' | 'exit3';
}

/**
 * Arguments of one process: the points of `opts.build` (default: every point; a job of one build), with
 * `opts.rounds` rounds (default the job's when there are several variants).
 */
export function binaryArgs(job: RunJob, hooks: TestHooks | null, opts: { build?: string; rounds?: number } = {}): string[] {
  const points = opts.build === undefined ? job.points : job.points.filter((p) => p.build === opts.build);
  const first = points[0]!.point;
  const variants = points.map((p) => p.point.variant);
  const args = ['--backend', first.backend, '--variant', variants.join(','), ...shapeArgs(first)];
  args.push('--tokens', String(first.tokens), '--dtype', first.dtype);
  // Several GPUs: the experts split across them, each holding its own `tokens` (csrc/CONTRACT.md --gpus).
  if (first.gpus !== undefined && first.gpus > 1) args.push('--gpus', String(first.gpus));
  args.push('--warmup', String(first.warmup), '--iters', String(first.iters), '--seed', String(job.seed));
  if (first.rotate !== null) args.push('--rotate', String(first.rotate));
  if (first.cold_l2) args.push('--cold-l2');
  const rounds = opts.rounds ?? job.rounds;
  if (variants.length > 1 && rounds > 1) args.push('--rounds', String(rounds));
  if (hooks?.sleepMs) args.push('--test-sleep-ms', String(hooks.sleepMs));
  if (hooks?.output) args.push('--test-output', hooks.output);
  return args;
}

function shapeArgs(p: Point): string[] {
  if (p.model !== null) return ['--model', p.model];
  return ['--hidden', String(p.hidden), '--inter', String(p.inter), '--experts', String(p.experts), '--topk', String(p.topk)];
}
