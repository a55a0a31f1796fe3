/**
 * Variants and shape presets the native binary (csrc/) knows. Kept here so a
 * sweep naming an unknown variant is refused at submit time, before any work
 * is queued. csrc/CONTRACT.md is the source of truth; keep the two in step.
 */
export const CPU_VARIANTS = ['reference', 'fused'] as const;
export const CUDA_VARIANTS = [
  'separate',
  'persistent-simple',
  'persistent-multiwarp',
  'persistent-roundrobin',
  'persistent-splitk',
  'persistent-splitk-dyn',
  'persistent-stream',
] as const;

export const BACKENDS = ['cpu', 'cuda'] as const;
export type Backend = (typeof BACKENDS)[number];

export const VARIANTS_BY_BACKEND: Record<Backend, readonly string[]> = {
  cpu: CPU_VARIANTS,
  cuda: CUDA_VARIANTS,
};

/** Shape presets: public MoE layer shapes (routed experts only). */
export const MODELS = {
  tiny: { hidden: 256, inter: 128, experts: 16, topk: 4 },
  'qwen3-30b-a3b': { hidden: 2048, inter: 768, experts: 128, topk: 8 },
  'olmoe-1b-7b': { hidden: 2048, inter: 1024, experts: 64, topk: 8 },
  'deepseek-v2-lite': { hidden: 2048, inter: 1408, experts: 64, topk: 6 },
} as const;
export type ModelName = keyof typeof MODELS;
export const MODEL_NAMES = Object.keys(MODELS) as ModelName[];

export const DTYPES = ['fp16', 'bf16', 'fp32'] as const;
