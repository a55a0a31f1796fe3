/**
 * The variant table of a build of moe-bench (`csrc/variants.json`): shape
 * presets, and per variant its backend, family, dtypes, shape limits and
 * tunables. It is the one list: the binary embeds the file and checks every
 * run against it, and the coordinator reads the same file from the source a
 * sweep submits, so a point that passes submit is one the binary accepts.
 *
 * Two builds may carry different tables (a new variant on a branch): each is
 * read from its own source.
 */
import { z } from 'zod';

export const VARIANT_TABLE_SCHEMA = 'moefarm.variants/1';

const SHAPE_FIELDS = ['hidden', 'inter', 'experts', 'topk', 'tokens'] as const;
export type ShapeField = (typeof SHAPE_FIELDS)[number];

/** A limit on one integer field. Every key is optional; all that are given must hold. */
export const LimitSchema = z.strictObject({
  min: z.int().positive().optional(),
  max: z.int().positive().optional(),
  multiple_of: z.int().positive().optional(),
  power_of_two: z.boolean().optional(),
});
export type Limit = z.infer<typeof LimitSchema>;

const LimitsSchema = z.strictObject({
  hidden: LimitSchema.optional(),
  inter: LimitSchema.optional(),
  experts: LimitSchema.optional(),
  topk: LimitSchema.optional(),
  tokens: LimitSchema.optional(),
});
export type Limits = z.infer<typeof LimitsSchema>;

/**
 * A tunable: a list of allowed values, or a range; its default is a value or "auto" (the binary's
 * heuristic decides, and its output says so). The binary takes values with `--tune` and echoes each
 * one with its source (flag, tuning table, default, heuristic).
 */
export const TunableSchema = z
  .strictObject({
    summary: z.string().optional(),
    values: z.array(z.int()).min(1).optional(),
    min: z.int().optional(),
    max: z.int().optional(),
    multiple_of: z.int().positive().optional(),
    default: z.union([z.int(), z.literal('auto')]),
  })
  .superRefine((t, ctx) => {
    if (!t.values && (t.min === undefined || t.max === undefined)) ctx.addIssue({ code: 'custom', message: 'expected values, or min and max' });
    else if (t.default !== 'auto') {
      const why = tunableValueReason('default', t, t.default);
      if (why) ctx.addIssue({ code: 'custom', path: ['default'], message: why });
    }
  });
export type Tunable = z.infer<typeof TunableSchema>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * What one fp32 scale of fp8 expert weights covers (the binary's --fp8-scales, csrc/CONTRACT.md): an output
 * channel (the default), a whole matrix per expert, or a 128 x 128 block (the Qwen3-30B-A3B-FP8 checkpoint's).
 */
export const FP8_SCALES = ['channel', 'tensor', 'block'] as const;
/** Most GPUs one point may ask for (a sweep's gpus axis, a variant's max_gpus, a tuning entry's gpus): the GPUs of one host. */
export const MAX_GPUS = 64;
export type Fp8Scales = (typeof FP8_SCALES)[number];

export const PresetSchema = z
  .strictObject({
    name: z.string().regex(NAME),
    hidden: z.int().positive(),
    inter: z.int().positive(),
    experts: z.int().positive(),
    topk: z.int().positive(),
    /** Shared experts (router-independent, weight 1 each) and their intermediate size; absent: none. */
    shared_experts: z.int().nonnegative().optional(),
    shared_inter: z.int().positive().optional(),
  })
  .refine((p) => !p.shared_experts || p.shared_inter !== undefined, { error: 'expected shared_inter with shared_experts', path: ['shared_inter'] });
export type Preset = z.infer<typeof PresetSchema>;

export const VariantSpecSchema = z.strictObject({
  name: z.string().regex(NAME),
  backend: z.enum(['cpu', 'cuda']),
  family: z.string().regex(NAME),
  strategy: z.string().regex(NAME).nullable(),
  summary: z.string(),
  dtypes: z.array(z.string()).min(1),
  limits: LimitsSchema,
  min_compute_capability: z.string().regex(/^\d+\.\d+$/).optional(),
  note: z.string().optional(),
  /** Most GPUs (expert-parallel devices, the sweep's gpus axis) one run may use; absent: 1 (no multi-GPU code). */
  max_gpus: z.int().min(1).max(MAX_GPUS).optional(),
  /** True: the variant runs layers with shared experts (--shared-experts); absent or false: it refuses them. */
  shared_experts: z.boolean().optional(),
  /** With dtype fp8: what its scales may cover (--fp8-scales); absent: channel only. */
  fp8_scales: z.array(z.enum(FP8_SCALES)).min(1).optional(),
  tunables: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/), TunableSchema),
});
export type VariantSpec = z.infer<typeof VariantSpecSchema>;

export const VariantTableSchema = z.strictObject({
  schema: z.literal(VARIANT_TABLE_SCHEMA),
  about: z.string().optional(),
  /** What the command line accepts at all, for every variant. */
  limits: LimitsSchema,
  presets: z.array(PresetSchema),
  variants: z.array(VariantSpecSchema).min(1),
});
export type VariantTable = z.infer<typeof VariantTableSchema>;

/** Parse the text of a variants.json; errors name the file and the field. */
export function parseVariantTable(text: string, where: string): VariantTable {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not JSON (${(err as Error).message})`);
  }
  const parsed = VariantTableSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new Error(`${where}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  const names = new Set<string>();
  for (const v of parsed.data.variants) {
    if (names.has(v.name)) throw new Error(`${where}: variants: '${v.name}' listed twice`);
    names.add(v.name);
  }
  return parsed.data;
}

/** What a point asks of a variant: its shape, token count and dtype. */
export interface ShapeRequest {
  hidden: number;
  inter: number;
  experts: number;
  topk: number;
  tokens: number;
  dtype: string;
  /** GPUs the experts are split across (the gpus axis); absent: 1. */
  gpus?: number;
  /** Shared experts of the layer (0 or absent: none) and their intermediate size. */
  shared_experts?: number;
  shared_inter?: number;
  /** With dtype fp8: what a scale covers; absent: channel. */
  fp8_scales?: Fp8Scales;
}

function limitFailure(field: ShapeField, value: number, limit: Limit | undefined): string | null {
  if (!limit) return null;
  if (limit.min !== undefined && value < limit.min) return `${field} (${value}) must be >= ${limit.min}`;
  if (limit.max !== undefined && value > limit.max) return `${field} (${value}) must be <= ${limit.max}`;
  if (limit.multiple_of !== undefined && value % limit.multiple_of !== 0) return `${field} (${value}) must be a multiple of ${limit.multiple_of}`;
  if (limit.power_of_two && (value & (value - 1)) !== 0) return `${field} (${value}) must be a power of two`;
  return null;
}

/**
 * Why this variant cannot run the request, or null when it can. The same rule the binary applies
 * (its --list prints this table; csrc checks every run against it), in the same words.
 */
export function unsupportedReason(table: VariantTable, spec: VariantSpec, req: ShapeRequest): string | null {
  if (req.topk > req.experts) return `topk (${req.topk}) must be <= experts (${req.experts})`;
  for (const field of SHAPE_FIELDS) {
    const why = limitFailure(field, req[field], table.limits[field]) ?? limitFailure(field, req[field], spec.limits[field]);
    if (why) return why + (spec.note && spec.limits[field] ? ` (${spec.note})` : '');
  }
  const shared = req.shared_experts ?? 0;
  if (shared > 0 && !spec.shared_experts) return `shared_experts (${shared}) are not supported by this variant (its table row does not say "shared_experts": true)`;
  if (!spec.dtypes.includes(req.dtype)) return `dtype ${req.dtype} is not supported (expected ${spec.dtypes.join(' or ')})`;
  if (req.dtype === 'fp8') {
    const modes: readonly string[] = spec.fp8_scales ?? ['channel'];
    const mode = req.fp8_scales ?? 'channel';
    if (!modes.includes(mode)) return `fp8_scales ${mode} is not supported (expected ${modes.join(' or ')})`;
  }
  const gpus = req.gpus ?? 1;
  const maxGpus = spec.max_gpus ?? 1;
  if (gpus > maxGpus) return `gpus (${gpus}) must be <= ${maxGpus}${maxGpus === 1 ? ' (the variant has no multi-GPU code)' : ''}`;
  if (gpus > 1 && req.experts % gpus !== 0) return `experts (${req.experts}) must be a multiple of gpus (${gpus}): each GPU owns experts/gpus of them`;
  return null;
}

function tunableValueReason(name: string, t: Tunable, value: number): string | null {
  const head = `tunable ${name}=${value}: `;
  if (t.values && !t.values.includes(value)) return head + `expected one of ${t.values.join(', ')}`;
  if (t.min !== undefined && value < t.min) return head + `must be >= ${t.min}`;
  if (t.max !== undefined && value > t.max) return head + `must be <= ${t.max}`;
  if (t.multiple_of !== undefined && value % t.multiple_of !== 0) return head + `must be a multiple of ${t.multiple_of}`;
  return null;
}

/**
 * Why `value` is not allowed for tunable `name` of this variant, or null when it is: the rule the
 * binary applies to `--tune` (exit 2, "variant NAME: <this>"), in the same words. Shape- and
 * device-dependent rules (a down tile must divide hidden, blocks that must fit on an SM) are the
 * binary's alone, applied when it plans the run.
 */
export function tunableReason(spec: VariantSpec, name: string, value: number): string | null {
  const t = spec.tunables[name];
  if (!t) {
    const names = Object.keys(spec.tunables);
    return `unknown tunable '${name}' (${names.length ? `tunables: ${names.join(', ')}` : 'it has no tunables'})`;
  }
  if (!Number.isInteger(value)) return `tunable ${name}=${value}: expected an integer`;
  return tunableValueReason(name, t, value);
}

export function findVariant(table: VariantTable, name: string): VariantSpec | undefined {
  return table.variants.find((v) => v.name === name);
}

export function variantsOf(table: VariantTable, backend: 'cpu' | 'cuda'): string[] {
  return table.variants.filter((v) => v.backend === backend).map((v) => v.name);
}

// ---------------------------------------------------------------- tuning tables

export const TUNING_TABLE_SCHEMA = 'moefarm.tuning/1';

/**
 * One tuning-table entry (csrc/tuning/*.json, embedded in the binary like variants.json): for a
 * device (its name exactly as the binary's device.name reports it, or "*" for any), a variant, a
 * shape, a token count and a dtype, the tunable values the binary uses unless --tune overrides them
 * or --no-tuning-table is given.
 */
export const TuningEntrySchema = z.strictObject({
  device: z.string().min(1),
  variant: z.string().regex(NAME),
  hidden: z.int().positive(),
  inter: z.int().positive(),
  experts: z.int().positive(),
  topk: z.int().positive(),
  tokens: z.int().positive(),
  dtype: z.string(),
  /**
   * The rest of the request the values were chosen for, each absent at its default as in a sweep point
   * (schema/sweep.ts Point): GPUs the experts are split across (2 or more), shared experts and their size
   * (together), fp8 scales other than per channel (dtype fp8 only). A value tuned at 2 GPUs, with shared
   * experts or with block scales is not used for a run without them, nor the other way round.
   */
  gpus: z.int().min(2).max(MAX_GPUS).optional(),
  shared_experts: z.int().positive().optional(),
  shared_inter: z.int().positive().optional(),
  fp8_scales: z.enum(FP8_SCALES).exclude(['channel']).optional(),
  tunables: z.record(z.string(), z.int()),
  /** How the values were chosen (command, card, date). */
  measured: z.string().optional(),
});
export type TuningEntry = z.infer<typeof TuningEntrySchema>;

/** What a tuning-table entry is looked up by: one value per key, in a file and across the files of a source. */
export type TuningKey = Pick<
  TuningEntry,
  'device' | 'variant' | 'hidden' | 'inter' | 'experts' | 'topk' | 'tokens' | 'dtype' | 'gpus' | 'shared_experts' | 'shared_inter' | 'fp8_scales'
>;

/** The key's fields, and nothing else, of an entry or of anything that carries them (the optional ones only where set). */
export function tuningKeyOf(k: TuningKey): TuningKey {
  return {
    device: k.device,
    variant: k.variant,
    hidden: k.hidden,
    inter: k.inter,
    experts: k.experts,
    topk: k.topk,
    tokens: k.tokens,
    dtype: k.dtype,
    ...(k.gpus !== undefined && k.gpus > 1 ? { gpus: k.gpus } : {}),
    ...(k.shared_experts ? { shared_experts: k.shared_experts, shared_inter: k.shared_inter } : {}),
    ...(k.fp8_scales ? { fp8_scales: k.fp8_scales } : {}),
  };
}

/** The key as one comparable text (the optional fields at their defaults when absent). */
export function tuningKey(k: TuningKey): string {
  return JSON.stringify([
    k.device, k.variant, k.hidden, k.inter, k.experts, k.topk, k.tokens, k.dtype,
    k.gpus ?? 1, k.shared_experts ?? 0, k.shared_inter ?? 0, k.fp8_scales ?? 'channel',
  ]);
}

export const TuningTableSchema = z.strictObject({
  schema: z.literal(TUNING_TABLE_SCHEMA),
  about: z.string().optional(),
  entries: z.array(TuningEntrySchema),
});
export type TuningTable = z.infer<typeof TuningTableSchema>;

/** Parse one tuning file against the variant table of the same source: the binary's rules, the binary's words. */
export function parseTuningTable(text: string, where: string, table: VariantTable): TuningTable {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not JSON (${(err as Error).message})`);
  }
  const parsed = TuningTableSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new Error(`${where}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  const keys = new Map<string, number>();
  parsed.data.entries.forEach((e, i) => {
    const at = `${where}: entries.${i}`;
    if ((e.shared_experts !== undefined) !== (e.shared_inter !== undefined)) {
      throw new Error(`${at}: shared_experts and shared_inter go together (both absent: no shared experts)`);
    }
    if (e.fp8_scales !== undefined && e.dtype !== 'fp8') throw new Error(`${at}.fp8_scales: only for dtype fp8 (this entry's dtype is ${e.dtype})`);
    const spec = findVariant(table, e.variant);
    if (!spec) throw new Error(`${at}.variant: '${e.variant}' is not in variants.json`);
    for (const [name, value] of Object.entries(e.tunables)) {
      const why = tunableReason(spec, name, value);
      if (why) throw new Error(`${at}: variant ${e.variant}: ${why}`);
    }
    const key = tuningKey(e);
    const prev = keys.get(key);
    if (prev !== undefined) throw new Error(`${at}: the same key as entries.${prev}`);
    keys.set(key, i);
  });
  return parsed.data;
}
