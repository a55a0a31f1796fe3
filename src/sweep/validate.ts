/**
 * A point checked against the variant table of the build that will run it
 * (schema/variant-table.ts: the rule the binary applies), so a point that
 * passes submit is never refused by the binary for a constraint it declared.
 * The message names the sweep file's field and the build.
 */
import { maxWeightGib } from '../config.js';
import type { Point } from '../schema/sweep.js';
import { findVariant, unsupportedReason, variantsOf } from '../schema/variant-table.js';
import type { PlanBuild } from './builds.js';

/** Bytes per weight element of each dtype. */
const DTYPE_BYTES: Record<Point['dtype'], number> = { fp8: 1, fp16: 2, bf16: 2, fp32: 4 };

/** Default bound on a point's weights: the memory of an 80 GB GPU (H100), which the weights alone must fit. */
export const DEFAULT_MAX_WEIGHT_GIB = 80;

/** MOEFARM_MAX_WEIGHT_GIB (a positive number), else DEFAULT_MAX_WEIGHT_GIB, in bytes. */
export function maxWeightBytes(): number {
  return (maxWeightGib() ?? DEFAULT_MAX_WEIGHT_GIB) * 2 ** 30;
}

/** The layer's weights as the binary allocates them: gate, up and down per expert, and the router. */
export function weightBytes(p: Pick<Point, 'hidden' | 'inter' | 'experts' | 'dtype' | 'shared_experts' | 'shared_inter'>): number {
  const shared = (p.shared_experts ?? 0) * 3 * p.hidden * (p.shared_inter ?? 0);
  return (p.experts * 3 * p.hidden * p.inter + shared + p.hidden * p.experts) * DTYPE_BYTES[p.dtype];
}

function gib(bytes: number): string {
  const g = bytes / 2 ** 30;
  return g >= 100 ? g.toFixed(0) : g.toFixed(1);
}

/**
 * A setting of a point that only a GPU can honour, on a backend that runs none: a CPU worker ends such a run
 * as `unsatisfiable` (clock, power limit) and the binary refuses `--cold-l2` (exit 2). A power *source*
 * (ac, battery) applies to any machine and is allowed.
 */
function gpuOnlySetting(point: Point, gpuSettingsOnCpu: boolean): { axis: string; what: string; instead: string } | null {
  if (point.backend === 'cuda') return null;
  if (point.cold_l2) return { axis: 'cold_l2', what: 'cold_l2: true (an L2 flush between iterations)', instead: 'cold_l2: false' };
  if (gpuSettingsOnCpu) return null;
  if (point.clock !== 'default') return { axis: 'clock', what: `clock ${typeof point.clock === 'string' ? point.clock : `{lock: ${point.clock.lock}}`}`, instead: 'clock: default' };
  if (typeof point.power === 'object') return { axis: 'power', what: `power {limit: ${point.power.limit}}`, instead: 'power: default (or ac / battery)' };
  return null;
}

/** Why `point` cannot run on `build`, as `field.path: message`, or null when it can. */
export function pointRefusal(build: PlanBuild, point: Point, index: Record<string, number>, byModel: boolean, gpuSettingsOnCpu = false): string | null {
  const table = build.table;
  // The shape axis is expanded as 'shapeSpec' (a preset or an explicit shape): its index is the model's or the shape's.
  const at = (axis: string) => `matrix.${axis}[${index[axis === 'model' || axis === 'shape' ? 'shapeSpec' : axis] ?? 0}]`;
  const excludeHint = `drop it or add an exclude rule {${build.name === 'default' ? '' : `build: ${build.name}, `}backend: ${point.backend}, variant: ${point.variant}}`;
  const spec = findVariant(table, point.variant);
  if (!spec || spec.backend !== point.backend) {
    const known = variantsOf(table, point.backend);
    const what = spec ? `a ${spec.backend} variant` : 'not a variant of this build';
    return `${at('variant')}: '${point.variant}' is not a ${point.backend} variant (${build.label}: ${what}; its ${point.backend} variants: ${known.join(', ') || 'none'}); ${excludeHint}`;
  }
  // fp8 scales belong to fp8 weights: a tensor or block value on a point of another dtype is a matrix mistake.
  if (point.fp8_scales !== undefined && point.dtype !== 'fp8') {
    return `${at('fp8_scales')}: fp8_scales ${point.fp8_scales} applies to dtype fp8 only (the scales of e4m3 weights), and this point's dtype is ${point.dtype}; ` +
      `add an exclude rule {dtype: ${point.dtype}, fp8_scales: ${point.fp8_scales}}`;
  }
  const gpuOnly = gpuOnlySetting(point, gpuSettingsOnCpu);
  if (gpuOnly) {
    return `${at(gpuOnly.axis)}: ${gpuOnly.what} applies to a GPU, and the ${point.backend} backend runs none (a worker would refuse it); ` +
      `use ${gpuOnly.instead}, or add an exclude rule {backend: ${point.backend}, ${gpuOnly.axis}: …}`;
  }
  const why = unsupportedReason(table, spec, {
    hidden: point.hidden, inter: point.inter, experts: point.experts, topk: point.topk, tokens: point.tokens, dtype: point.dtype,
    shared_experts: point.shared_experts ?? 0, shared_inter: point.shared_inter ?? 0, gpus: point.gpus ?? 1,
    ...(point.fp8_scales ? { fp8_scales: point.fp8_scales } : {}),
  });
  if (why === null) {
    const bytes = weightBytes(point);
    if (bytes <= maxWeightBytes()) return null;
    return (
      `${at(byModel ? 'model' : 'shape')}: the weights of this shape are ${gib(bytes)} GiB (experts ${point.experts} x 3 matrices x hidden ${point.hidden} x inter ${point.inter}` +
        `${point.shared_experts ? `, plus ${point.shared_experts} shared x 3 x ${point.hidden} x ${point.shared_inter ?? 0}` : ''} ` +
      `x ${DTYPE_BYTES[point.dtype]} bytes of ${point.dtype}, plus the router), more than the ${gib(maxWeightBytes())} GiB a run may hold ` +
      `(an 80 GB GPU's memory; MOEFARM_MAX_WEIGHT_GIB sets the bound): no GPU could run it`
    );
  }
  // unsupportedReason names the field first ("tokens (8) must be <= 4", "dtype fp32 is not supported").
  const field = /^([a-z0-9_]+)/.exec(why)?.[1] ?? '';
  // "gpus (4) must be <= 1", "experts (16) must be a multiple of gpus (3)": the gpus axis is what to change.
  const path = /gpus \(/.test(why) ? at('gpus') : field === 'tokens' ? at('tokens') : field === 'dtype' ? at('dtype') : field === 'fp8_scales' ? at('fp8_scales') : ['hidden', 'inter', 'experts', 'topk', 'shared_experts'].includes(field) ? at(byModel ? 'model' : 'shape') : 'matrix';
  return `${path}: variant ${point.variant} of ${build.label} cannot run this point: ${why}; ${excludeHint}`;
}
