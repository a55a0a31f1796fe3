/**
 * The native binary itself: the CPU build's own checks (every CPU variant on
 * the presets, every value of its tunable, usage and tunable refusals, the TEST
 * ONLY misbehaviours), and the CUDA build compiled with the real nvcc for every
 * target with make, as the worker's build step runs it. CI has no GPU, so the
 * CUDA binary is only asked what it can answer without one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parseVariantTable, variantsOf } from '../src/schema/variant-table.js';
import { csrcBuildDir } from './helpers/env.js';
import { ROOT } from './helpers/services.js';

const CSRC = join(ROOT, 'csrc');

describe('the CPU build', () => {
  it('passes csrc/test_cpu.sh', async () => {
    const r = await execa('bash', [join(CSRC, 'test_cpu.sh'), csrcBuildDir(CSRC, 'test-cpu-sh')], { reject: false, cwd: CSRC });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/(\d+)\/\1 passed/);
  }, 600_000);

  it('lets several makes of one build directory run at once while its moe-bench runs (two check_gpu.sh runs on one GPU host)', async () => {
    // Every make regenerates the embedded tables and puts moe-bench in place. With one shared temporary name for
    // the tables, a make whose tables were unchanged removed the file another was about to move ("mv: cannot stat
    // ...tmp": every round failed); with moe-bench copied in place, a process starting it while a make wrote it
    // failed with "Text file busy" (GPU run 23). The build directory is test_cpu.sh's, built by the test above.
    const dir = csrcBuildDir(CSRC, 'test-cpu-sh');
    const make = () => execa('make', ['-s', '-C', CSRC, 'cpu', `BUILD=${dir}`], { env: { MAKEFLAGS: '' }, reject: false, all: true });
    const list = () => execa(join(dir, 'moe-bench'), ['--list'], { reject: false, all: true });
    expect((await make()).exitCode).toBe(0);
    for (let round = 0; round < 5; round++) {
      const runs = await Promise.all([...Array.from({ length: 6 }, make), ...Array.from({ length: 6 }, list)]);
      for (const r of runs) expect(r.exitCode, r.all).toBe(0);
    }
    expect(readFileSync(join(dir, 'gen', 'embedded_tables.h'), 'utf8')).toContain(readFileSync(join(CSRC, 'variants.json'), 'utf8'));
    expect(readdirSync(join(dir, 'gen'))).toEqual(['embedded_tables.h']);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  }, 600_000);
});

describe('the CUDA build (nvcc, no GPU here)', () => {
  const build = async (arch: string) => {
    const dir = csrcBuildDir(CSRC, 'native-test', `cuda-${arch}`);
    const made = await execa('make', ['-s', '-C', CSRC, 'cuda', `ARCH=${arch}`, `BUILD=${dir}`], { env: { MAKEFLAGS: '' }, reject: false, all: true });
    expect(made.exitCode, made.all).toBe(0);
    return join(dir, 'moe-bench');
  };

  it.each(['sm_90a', 'sm_89', 'sm_80'])('compiles for %s and lists every CUDA variant of the table', async (arch) => {
    const bin = await build(arch);
    const list = JSON.parse((await execa(bin, ['--list'])).stdout) as {
      build: { backends: string[]; arch: string; compiler: string; flags: string };
      table: { variants: Array<{ name: string; backend: string }> };
    };
    expect(list.build).toMatchObject({ backends: ['cpu', 'cuda'], arch });
    expect(list.build.compiler).toMatch(/^nvcc /);
    expect(list.build.flags).toContain(arch === 'sm_90a' ? '-gencode arch=compute_90a,code=sm_90a' : `code=${arch}`);
    const table = parseVariantTable(readFileSync(join(CSRC, 'variants.json'), 'utf8'), 'csrc/variants.json');
    expect(list.table.variants.filter((v) => v.backend === 'cuda').map((v) => v.name)).toEqual(variantsOf(table, 'cuda'));
  }, 900_000);

  it('refuses to run without a GPU with exit code 3 and a message naming the CUDA call', async () => {
    const bin = await build('sm_90a');
    const r = await execa(bin, ['--backend', 'cuda', '--model', 'tiny', '--iters', '1'], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/CUDA error: cuda\w+/);
    expect(r.stdout).toBe('');
  }, 900_000);
});
