/**
 * What is static about every build of moe-bench: its backends and the storage
 * types its command line takes. Everything else a build supports (variants,
 * presets, shape limits, per-variant dtypes) is in that build's own variant
 * table, csrc/variants.json, read from each build's source at submit
 * (src/schema/variant-table.ts, src/sweep/validate.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../config.js';
import { parseVariantTable, variantsOf, type VariantTable } from './variant-table.js';

export const BACKENDS = ['cpu', 'cuda'] as const;
export type Backend = (typeof BACKENDS)[number];

/** fp8: e4m3 expert weights with per-output-channel scales, bf16 router, activations and output (csrc/CONTRACT.md). */
export const DTYPES = ['fp16', 'bf16', 'fp32', 'fp8'] as const;

/** The table of this checkout's csrc/, or null when there is none (a bundled CLI without sources). */
function checkoutTable(): VariantTable | null {
  try {
    return parseVariantTable(readFileSync(join(projectRoot, 'csrc', 'variants.json'), 'utf8'), 'csrc/variants.json');
  } catch {
    return null;
  }
}

// Views of this checkout's table, kept only for test/variants.test.ts (which compares them with the
// binary's --list); no code path of the farm uses them: a sweep is checked against each build's table.
const checkout = checkoutTable();
/** @deprecated this checkout's table only; use the build's table. */
export const CPU_VARIANTS: readonly string[] = checkout ? variantsOf(checkout, 'cpu') : [];
/** @deprecated this checkout's table only; use the build's table. */
export const CUDA_VARIANTS: readonly string[] = checkout ? variantsOf(checkout, 'cuda') : [];
/** @deprecated this checkout's table only; use the build's table. */
export const MODELS: Readonly<Record<string, { hidden: number; inter: number; experts: number; topk: number }>> = Object.fromEntries(
  (checkout?.presets ?? []).map((p) => [p.name, { hidden: p.hidden, inter: p.inter, experts: p.experts, topk: p.topk }]),
);
/** @deprecated this checkout's table only; use the build's table. */
export const MODEL_NAMES: readonly string[] = Object.keys(MODELS);
