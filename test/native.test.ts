/**
 * The native binary itself: the CPU build's own checks (every CPU variant on
 * the presets, usage errors, the TEST ONLY misbehaviours), and the CUDA build
 * compiled with the real nvcc through the worker's build step for every
 * target. CI has no GPU, so the CUDA binary is only asked what it cannot do.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ensureBinary } from '../worker/build.js';
import { TEST_CACHE } from './helpers/env.js';
import { ROOT } from './helpers/services.js';

describe('the CPU build', () => {
  it('passes csrc/test_cpu.sh', async () => {
    const r = await execa('bash', [join(ROOT, 'csrc', 'test_cpu.sh'), join(TEST_CACHE, 'test-cpu-sh')], { reject: false, cwd: join(ROOT, 'csrc') });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/(\d+)\/\1 passed/);
  }, 300_000);
});

describe('the CUDA build (nvcc, no GPU here)', () => {
  it.each(['sm_90a', 'sm_89', 'sm_80'])('compiles for %s through the worker\'s build cache', async (arch) => {
    const built = await ensureBinary({ csrc: join(ROOT, 'csrc'), cache: TEST_CACHE, backend: 'cuda', arch });
    expect(built.info).toMatchObject({ backend: 'cuda', arch });
    expect(built.info.compiler).toMatch(/^nvcc /);
    expect(built.info.flags).toContain(arch === 'sm_90a' ? '-gencode arch=compute_90a,code=sm_90a' : `code=${arch}`);
    const list = JSON.parse((await execa(built.path, ['--list'])).stdout) as { backends: string[]; variants: { cuda: string[] } };
    expect(list.backends).toContain('cuda');
    expect(list.variants.cuda).toContain('persistent-roundrobin');
  }, 600_000);

  it('refuses to run without a GPU with exit code 3 and a message naming the CUDA call', async () => {
    const built = await ensureBinary({ csrc: join(ROOT, 'csrc'), cache: TEST_CACHE, backend: 'cuda', arch: 'sm_90a' });
    const r = await execa(built.path, ['--backend', 'cuda', '--model', 'tiny', '--iters', '1'], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/cuda/i);
    expect(r.stdout).toBe('');
  }, 600_000);
});
