/**
 * A point checked against the variant table of the build that will run it
 * (schema/variant-table.ts: the rule the binary applies), so a point that
 * passes submit is never refused by the binary for a constraint it declared.
 * The message names the sweep file's field and the build.
 */
import type { Point } from '../schema/sweep.js';
import { findVariant, unsupportedReason, variantsOf } from '../schema/variant-table.js';
import type { PlanBuild } from './builds.js';

/** Why `point` cannot run on `build`, as `field.path: message`, or null when it can. */
export function pointRefusal(build: PlanBuild, point: Point, index: Record<string, number>, byModel: boolean): string | null {
  const table = build.table;
  const at = (axis: string) => `matrix.${axis}[${index[axis] ?? 0}]`;
  const excludeHint = `drop it or add an exclude rule {${build.name === 'default' ? '' : `build: ${build.name}, `}backend: ${point.backend}, variant: ${point.variant}}`;
  const spec = findVariant(table, point.variant);
  if (!spec || spec.backend !== point.backend) {
    const known = variantsOf(table, point.backend);
    const what = spec ? `a ${spec.backend} variant` : 'not a variant of this build';
    return `${at('variant')}: '${point.variant}' is not a ${point.backend} variant (${build.label}: ${what}; its ${point.backend} variants: ${known.join(', ') || 'none'}); ${excludeHint}`;
  }
  const why = unsupportedReason(table, spec, { hidden: point.hidden, inter: point.inter, experts: point.experts, topk: point.topk, tokens: point.tokens, dtype: point.dtype, gpus: point.gpus ?? 1 });
  if (why === null) return null;
  // unsupportedReason names the field first ("tokens (8) must be <= 4", "dtype fp32 is not supported").
  const field = /^([a-z_]+)/.exec(why)?.[1] ?? '';
  // "gpus (4) must be <= 1", "experts (16) must be a multiple of gpus (3)": the gpus axis is what to change.
  const path = /gpus \(/.test(why) ? at('gpus') : field === 'tokens' ? at('tokens') : field === 'dtype' ? at('dtype') : ['hidden', 'inter', 'experts', 'topk'].includes(field) ? at(byModel ? 'model' : 'shape') : 'matrix';
  return `${path}: variant ${point.variant} of ${build.label} cannot run this point: ${why}; ${excludeHint}`;
}
