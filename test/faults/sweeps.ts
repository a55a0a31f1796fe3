/** Tiny CPU sweeps for the fault tests: each run is one iteration of the `tiny` model (a few ms). */
import { planSweep, type Plan } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';

export interface TinySweep {
  name?: string;
  variants?: string[];
  tokens?: number[];
  repeat?: number;
  timeoutS?: number;
  iters?: number;
  /** The source folder to submit (default: this checkout's csrc/). */
  sourceDir?: string;
}

export function tinySweepText(pool: string, o: TinySweep = {}): string {
  return [
    `name: ${o.name ?? 'faults'}`,
    `pool: ${pool}`,
    `repeat: ${o.repeat ?? 1}`,
    `timeout_s: ${o.timeoutS ?? 60}`,
    'matrix:',
    `  variant: [${(o.variants ?? ['reference']).join(', ')}]`,
    '  model: tiny',
    `  tokens: [${(o.tokens ?? [1]).join(', ')}]`,
    '  warmup: 0',
    `  iters: ${o.iters ?? 1}`,
    '',
  ].join('\n');
}

export function tinyPlan(pool: string, o: TinySweep = {}): Plan {
  return planSweep(parseSweepText(tinySweepText(pool, o), 'faults.yaml'), { allowLarge: true, ...(o.sourceDir ? { sourceDir: o.sourceDir } : {}) });
}

/** `n` distinct token counts (1..n): a sweep of n points. */
export function range(n: number, from = 1): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}
