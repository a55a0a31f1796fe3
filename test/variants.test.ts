import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CPU_VARIANTS, CUDA_VARIANTS, MODEL_NAMES, MODELS } from '../src/schema/variants.js';
import { ensureBinary } from '../worker/build.js';
import { TEST_CACHE } from './helpers/env.js';
import { ROOT } from './helpers/services.js';

// The coordinator validates sweeps against these lists without a binary at hand: keep them equal to csrc's.
describe('variant and preset lists agree with the native binary', () => {
  it('matches the CPU build\'s --list', async () => {
    const bin = await ensureBinary({ csrc: join(ROOT, 'csrc'), cache: TEST_CACHE, backend: 'cpu', arch: 'sm_90a' });
    const list = JSON.parse((await execa(bin.path, ['--list'])).stdout) as { variants: { cpu: string[] }; presets: Array<{ name: string; hidden: number; inter: number; experts: number; topk: number } | string> };
    expect(list.variants.cpu).toEqual([...CPU_VARIANTS]);
    const names = list.presets.map((p) => (typeof p === 'string' ? p : p.name));
    expect(names.sort()).toEqual([...MODEL_NAMES].sort());
    for (const p of list.presets) if (typeof p !== 'string') expect(MODELS[p.name as keyof typeof MODELS]).toMatchObject({ hidden: p.hidden, inter: p.inter, experts: p.experts, topk: p.topk });
  });

  it('matches the CUDA source\'s variant table', () => {
    const src = readFileSync(join(ROOT, 'csrc', 'src', 'moe_cuda.cu'), 'utf8');
    const table = /kVariants\[\]\s*=\s*\{([^}]*)\}/.exec(src)?.[1] ?? '';
    expect([...table.matchAll(/"([^"]+)"/g)].map((m) => m[1])).toEqual([...CUDA_VARIANTS]);
  });
});
