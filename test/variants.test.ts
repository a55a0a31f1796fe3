/**
 * The variant table (csrc/variants.json) is the only list: the binary embeds it at build time and
 * prints it with --list, and refuses what the table refuses with the words of unsupportedReason /
 * tunableReason (src/schema/variant-table.ts). The tuning table (csrc/tuning/*.json) round-trips:
 * an entry written for this machine's CPU changes what the binary runs, and says so.
 *
 * The binaries are built with make straight from csrc/ (the build the worker runs, minus its
 * cache); the CUDA one with the real nvcc. It cannot run here (no GPU), but every table rule is
 * checked before the device is touched, so it answers these questions all the same.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BenchOutputSchema } from '../src/schema/bench-output.js';
import {
  findVariant,
  parseTuningTable,
  parseVariantTable,
  tunableReason,
  unsupportedReason,
  type ShapeRequest,
  type VariantTable,
} from '../src/schema/variant-table.js';
import { csrcBuildDir } from './helpers/env.js';
import { ROOT } from './helpers/services.js';

const CSRC = join(ROOT, 'csrc');

async function make(csrc: string, target: 'cpu' | 'cuda', build: string): Promise<string> {
  const r = await execa('make', ['-s', '-C', csrc, target, `BUILD=${build}`, ...(target === 'cuda' ? ['ARCH=sm_90a'] : [])], {
    env: { MAKEFLAGS: '' },
    reject: false,
    all: true,
  });
  if (r.exitCode !== 0) throw new Error(`make ${target} in ${csrc} failed:\n${r.all}`);
  return join(build, 'moe-bench');
}

/** The repository's table, parsed by the coordinator's own parser. */
const table: VariantTable = parseVariantTable(readFileSync(join(CSRC, 'variants.json'), 'utf8'), 'csrc/variants.json');

/** Runs the binary; expects exit 2 and returns its one stderr line. */
async function refusal(bin: string, args: string[]): Promise<string> {
  const r = await execa(bin, args, { reject: false });
  expect(r.exitCode, `${bin} ${args.join(' ')}: ${r.stderr}`).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr.split('\n')).toHaveLength(1);
  return r.stderr;
}

function shapeArgs(q: ShapeRequest): string[] {
  const shared = q.shared_experts ? ['--shared-experts', String(q.shared_experts), '--shared-inter', String(q.shared_inter)] : [];
  return ['--hidden', String(q.hidden), '--inter', String(q.inter), '--experts', String(q.experts), '--topk', String(q.topk),
    ...shared, '--tokens', String(q.tokens), '--dtype', q.dtype, ...(q.gpus ? ['--gpus', String(q.gpus)] : [])];
}

describe('the variant table is the binary\'s', () => {
  let cpuBin = '';
  beforeAll(async () => {
    cpuBin = await make(CSRC, 'cpu', csrcBuildDir(CSRC, 'variants-test', 'cpu'));
  }, 300_000);

  it('--list prints csrc/variants.json as the coordinator parses it, and the embedded tuning files', async () => {
    const list = JSON.parse((await execa(cpuBin, ['--list'])).stdout) as {
      schema: string; build: { backends: string[] }; table: unknown; tuning: { files: string[]; entries: unknown[] };
    };
    expect(list.schema).toBe('moefarm.list/1');
    expect(list.build.backends).toEqual(['cpu']);
    expect(parseVariantTable(JSON.stringify(list.table), 'moe-bench --list')).toEqual(table);
    const files = readdirSync(join(CSRC, 'tuning')).filter((f) => f.endsWith('.json')).sort().map((f) => `tuning/${f}`);
    expect(list.tuning.files).toEqual(files);
    const entries = files.flatMap((f) => parseTuningTable(readFileSync(join(CSRC, f), 'utf8'), f, table).entries);
    expect(list.tuning.entries).toHaveLength(entries.length);
  });

  it('refuses what unsupportedReason refuses, in its words (cpu variants)', async () => {
    const fused = findVariant(table, 'fused')!;
    const asks: ShapeRequest[] = [
      { hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 5000, dtype: 'bf16' },
      { hidden: 4, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'bf16' },
      { hidden: 256, inter: 128, experts: 4, topk: 8, tokens: 1, dtype: 'fp32' },
    ];
    for (const q of asks) {
      const why = unsupportedReason(table, fused, q);
      expect(why).not.toBeNull();
      expect(await refusal(cpuBin, ['--variant', 'fused', ...shapeArgs(q)])).toBe(`moe-bench: variant fused: ${why}`);
    }
  });

  it('runs fp8 weights and shared experts on every CPU variant, each checked against the fp64 oracle', async () => {
    const cpu = table.variants.filter((v) => v.backend === 'cpu');
    for (const v of cpu) {
      expect(v.dtypes, v.name).toContain('fp8');
      expect(v.shared_experts, v.name).toBe(true);
    }
    const names = cpu.map((v) => v.name).join(',');
    const run = async (args: string[]) => {
      const r = await execa(cpuBin, ['--variant', names, '--iters', '1', '--warmup', '0', ...args], { reject: false });
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return BenchOutputSchema.parse(JSON.parse(r.stdout));
    };
    for (const args of [['--model', 'tiny', '--dtype', 'fp8', '--tokens', '3'], ['--model', 'tiny-shared', '--tokens', '2'],
      ['--model', 'tiny-shared', '--dtype', 'fp8', '--tokens', '5'], ['--model', 'deepseek-v2-lite-shared', '--dtype', 'fp8']]) {
      const out = await run(args);
      for (const r of out.results) {
        expect(r.check, `${r.variant} ${args.join(' ')}`).toMatchObject({ pass: true, nan: false, tol: 0.02 });
        expect(r.check.experts_hit).toBe(r.check.experts);
      }
    }
    // What an iteration reads: fp8 experts are 1 byte a weight plus an fp32 scale per output channel; the shared
    // experts are read every iteration. The same shape in bf16 and without shared experts, for the difference.
    const [H, I, IS] = [256, 128, 64];
    const bf = await run(['--model', 'tiny', '--tokens', '1']);
    const f8 = await run(['--model', 'tiny', '--tokens', '1', '--dtype', 'fp8']);
    const sh = await run(['--model', 'tiny-shared', '--tokens', '1']);
    expect(sh.config).toMatchObject({ shared_experts: 2, shared_inter: IS });
    expect(sh.bytes_per_iter - bf.bytes_per_iter).toBeCloseTo(2 * 3 * IS * H * 2, 3);
    const d = (bf.bytes_per_iter - 16 * H * 2 - 2 * H * 2) / (3 * I * H * 2);  // distinct experts per iteration
    expect(f8.bytes_per_iter).toBeCloseTo(16 * H * 2 + d * (3 * I * H + 4 * (2 * I + H)) + 2 * H * 2, 3);
    // Shared experts need their size, and the size needs experts.
    expect(await refusal(cpuBin, ['--model', 'tiny', '--shared-experts', '2'])).toMatch(/--shared-inter: expected with --shared-experts 2/);
    expect(await refusal(cpuBin, ['--model', 'tiny', '--shared-inter', '64'])).toMatch(/--shared-inter: given without --shared-experts/);
    expect(await refusal(cpuBin, ['--model', 'tiny', '--dtype', 'fp4'])).toMatch(/--dtype: expected fp16, bf16, fp32 or fp8, got "fp4"/);
  });

  it('refuses a tunable outside its range naming the variant and the tunable, in tunableReason\'s words', async () => {
    const fused = findVariant(table, 'fused')!;
    const reference = findVariant(table, 'reference')!;
    for (const [spec, name, value] of [[fused, 'group', 3], [fused, 'groups', 8], [reference, 'group', 2]] as const) {
      const why = tunableReason(spec, name, value);
      expect(why).toMatch(name);
      expect(await refusal(cpuBin, ['--model', 'tiny', '--variant', spec.name, '--tune', `${name}=${value}`]))
        .toBe(`moe-bench: variant ${spec.name}: ${why}`);
    }
    expect(await refusal(cpuBin, ['--model', 'tiny', '--variant', 'fused', '--tune', 'group=x'])).toMatch(/--tune: group: expected an integer/);
    expect(await refusal(cpuBin, ['--model', 'tiny', '--variant', 'fused', '--tune', 'separate:ffn1_tile=8'])).toMatch(/--tune: separate: not one of the listed variants/);
  });

  it('refuses a GPU count the variant cannot use or split, in unsupportedReason\'s words', async () => {
    const reference = findVariant(table, 'reference')!;
    const tiny = { hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 2, dtype: 'bf16' };
    for (const gpus of [3, 16]) {
      const why = unsupportedReason(table, reference, { ...tiny, gpus });
      expect(why).toMatch(/gpus \(/);
      expect(await refusal(cpuBin, ['--variant', 'reference', ...shapeArgs(tiny), '--gpus', String(gpus)])).toBe(`moe-bench: variant reference: ${why}`);
    }
    expect(unsupportedReason(table, findVariant(table, 'separate')!, { ...tiny, gpus: 2 })).toBe('gpus (2) must be <= 1 (the variant has no multi-GPU code)');
  });

  it('--gpus N: the experts split over N devices give, bit for bit, the layer on one device, and pass the oracle', async () => {
    for (const [gpus, dtype] of [[2, 'bf16'], [4, 'fp32'], [8, 'fp16']] as const) {
      const r = await execa(cpuBin, ['--model', 'tiny', '--tokens', '3', '--gpus', String(gpus), '--dtype', dtype, '--variant', 'reference,fused', '--iters', '2', '--warmup', '0']);
      const out = BenchOutputSchema.parse(JSON.parse(r.stdout));
      expect(out.config).toMatchObject({ tokens: 3, gpus, layer_tokens: 3 * gpus });
      // One device's bytes: the router and its own tokens in and out, plus the distinct experts it owns. The mean
      // device is bytes_per_iter / N; the largest reads at least that and at most all of its E/N experts.
      const { hidden, inter, experts } = out.config;
      const size = { bf16: 2, fp16: 2, fp32: 4 }[dtype];
      const fixed = experts * hidden * size + 2 * 3 * hidden * size, expert = 3 * inter * hidden * size;
      const per = out.bytes_per_gpu!;
      expect(Math.abs(per.mean * gpus - out.bytes_per_iter)).toBeLessThanOrEqual(gpus);
      expect(per.max).toBeGreaterThanOrEqual(per.mean);
      expect((per.max - fixed) / expert).toBeLessThanOrEqual(experts / gpus + 1e-9);
      expect((per.max - fixed) / expert).toBeGreaterThanOrEqual(1);
      for (const v of out.results) {
        const perGpu = (v as unknown as { bandwidth_per_gpu_gbps: number }).bandwidth_per_gpu_gbps;
        expect(perGpu).toBeCloseTo(per.max / (v.stats!.median * 1e-6) / 1e9, 6);
      }
      for (const v of out.results) {
        expect(v.check.pass, v.variant).toBe(true);
        const ep = (v as unknown as { ep: { gpus: number; experts_per_gpu: number; tokens_per_gpu: number; comm: string; tokens_sent: number[][]; single_device: { compared_forwards: number; equal: boolean; differing_values: number; max_abs_diff: number } } }).ep;
        expect(ep).toMatchObject({ gpus, experts_per_gpu: 16 / gpus, tokens_per_gpu: 3, comm: 'memcpy' });
        // Every checked forward was run again on one device: not one value differed.
        expect(ep.single_device).toMatchObject({ equal: true, differing_values: 0, max_abs_diff: 0 });
        expect(ep.single_device.compared_forwards).toBeGreaterThanOrEqual(3);
        // Each device sends each of its tokens at most once to each owner, and at least once somewhere.
        expect(ep.tokens_sent).toHaveLength(gpus);
        for (const row of ep.tokens_sent) {
          expect(row).toHaveLength(gpus);
          const sum = row.reduce((a, b) => a + b, 0);
          expect(sum).toBeGreaterThanOrEqual(3);
          expect(sum).toBeLessThanOrEqual(3 * Math.min(gpus, 4));
        }
      }
    }
    // Without --gpus: no split, and the JSON says so.
    const one = BenchOutputSchema.parse(JSON.parse((await execa(cpuBin, ['--model', 'tiny', '--iters', '1', '--warmup', '0'])).stdout));
    expect(one.config).toMatchObject({ gpus: 1, layer_tokens: 1 });
    expect(one.bytes_per_gpu).toEqual({ mean: one.bytes_per_iter, max: one.bytes_per_iter });
    expect((one.results[0] as unknown as { ep: unknown }).ep).toBeNull();
  });

  it('echoes every tunable with its source, and --tune changes the run', async () => {
    const run = async (extra: string[]) => {
      const r = await execa(cpuBin, ['--model', 'tiny', '--tokens', '3', '--variant', 'reference,fused', '--iters', '2', '--warmup', '0', ...extra]);
      return BenchOutputSchema.parse(JSON.parse(r.stdout));
    };
    const plain = await run([]);
    expect(plain.results.map((r) => r.tunables)).toEqual([{}, { group: { value: 8, source: 'default' } }]);
    expect(plain.results[1]!.energy).toMatchObject({ joules_per_forward: null, reason: expect.stringMatching(/cpu backend/) });
    const tuned = await run(['--tune', 'fused:group=2']);
    expect(tuned.results[1]!.tunables).toEqual({ group: { value: 2, source: 'flag' } });
    expect(tuned.results[1]!.check.pass).toBe(true);
  });
});

describe('the CUDA build checks the same table before it touches a device', () => {
  let cudaBin = '';
  beforeAll(async () => {
    cudaBin = await make(CSRC, 'cuda', csrcBuildDir(CSRC, 'variants-test', 'cuda-sm_90a'));
  }, 900_000);

  it('refuses the shapes and tunables the table refuses, in the coordinator\'s words', async () => {
    // Shared experts: every CUDA row runs them (os and splitk through their SHARED instantiations, the ep rows
    // replicated on every GPU); the -shared presets pass the table for every row.
    for (const v of table.variants.filter((v) => v.backend === 'cuda')) {
      expect(v.shared_experts, v.name).toBe(true);
      for (const preset of table.presets.filter((p) => p.shared_experts))
        expect(unsupportedReason(table, v, { ...preset, tokens: 4, dtype: 'bf16' }), `${v.name} ${preset.name}`).toBeNull();
    }
    const asks: Array<[string, ShapeRequest]> = [
      ['persistent-splitk', { hidden: 2050, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'bf16' }],
      ['separate', { hidden: 2048, inter: 20000, experts: 128, topk: 8, tokens: 1, dtype: 'bf16' }],
      ['persistent-simple', { hidden: 2048, inter: 768, experts: 1000, topk: 8, tokens: 1, dtype: 'fp16' }],
      ['persistent-multiwarp', { hidden: 2048, inter: 768, experts: 128, topk: 40, tokens: 1, dtype: 'bf16' }],
      ['persistent-splitk-dyn', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 300, dtype: 'bf16' }],
      ['persistent-roundrobin', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'fp32' }],
      // fp8: refused by the rows that do not run it (separate and persistent-flat take it; the os, splitk, grouped
      // and ep rows do not)
      ['persistent-splitk', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'fp8' }],
      ['persistent-multiwarp', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'fp8' }],
      ['persistent-flat', { hidden: 7168, inter: 2048, experts: 384, topk: 8, tokens: 1, dtype: 'bf16' }],
      // expert parallelism: the CUDA ep rows split the experts over up to 8 GPUs, bf16/fp16
      ['ep-separate', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'bf16', gpus: 3 }],
      ['ep-persistent', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'bf16', gpus: 16 }],
      ['ep-separate', { hidden: 7168, inter: 2048, experts: 256, topk: 8, tokens: 1, dtype: 'fp8', gpus: 2 }],
      ['separate', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 1, dtype: 'bf16', gpus: 2 }],
      // persistent-grouped: 16-unit gate/up units (inter a multiple of 16), mma on bf16/fp16 only
      ['persistent-grouped', { hidden: 2880, inter: 1000, experts: 24, topk: 3, tokens: 9, dtype: 'bf16' }],
      ['persistent-grouped', { hidden: 2048, inter: 768, experts: 128, topk: 8, tokens: 64, dtype: 'fp8' }],
    ];
    for (const [name, q] of asks) {
      const why = unsupportedReason(table, findVariant(table, name)!, q);
      expect(why, name).not.toBeNull();
      expect(await refusal(cudaBin, ['--backend', 'cuda', '--variant', name, ...shapeArgs(q)])).toBe(`moe-bench: variant ${name}: ${why}`);
    }
    const tunes: Array<[string, string, number]> = [
      ['persistent-splitk', 'slice', 300], ['persistent-splitk', 'slice', 20], ['persistent-splitk-dyn', 'threads', 384],
      ['separate', 'down_tile', 96], ['persistent-multiwarp', 'sched_warps', 3], ['persistent-simple', 'sched_warps', 4],
      ['ep-separate', 'comm', 3], ['ep-persistent', 'comm', 2], ['persistent-grouped', 'order', 2],
    ];
    for (const [name, tunable, value] of tunes) {
      const why = tunableReason(findVariant(table, name)!, tunable, value);
      expect(why, `${name} ${tunable}=${value}`).not.toBeNull();
      expect(await refusal(cudaBin, ['--backend', 'cuda', '--model', 'qwen3-30b-a3b', '--variant', name, '--tune', `${tunable}=${value}`]))
        .toBe(`moe-bench: variant ${name}: ${why}`);
    }
  });

  it('prints the same table and names both backends', async () => {
    const list = JSON.parse((await execa(cudaBin, ['--list'])).stdout) as { build: { backends: string[]; arch: string }; table: unknown };
    expect(list.build).toMatchObject({ backends: ['cpu', 'cuda'], arch: 'sm_90a' });
    expect(parseVariantTable(JSON.stringify(list.table), 'moe-bench --list')).toEqual(table);
  });
});

describe('a row\'s fp8_scales (the modes of --fp8-scales it takes) and shared_experts', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moefarm-fp8-scales-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a mode its row does not list (absent: channel only), and shared experts on a row without the flag, with exit 2, in the words of unsupportedReason', async () => {
    // A copy of csrc/ whose fused row takes channel and tensor, and whose reference row says nothing of fp8 scales
    // (channel) nor of shared experts (refused).
    const src = join(dir, 'csrc');
    cpSync(CSRC, src, { recursive: true, filter: (p) => !/[/\\](build|results)$/.test(p) });
    const json = JSON.parse(readFileSync(join(src, 'variants.json'), 'utf8')) as {
      variants: Array<{ name: string; fp8_scales?: string[]; shared_experts?: boolean }>;
    };
    for (const v of json.variants) {
      if (v.name === 'fused') v.fp8_scales = ['channel', 'tensor'];
      if (v.name === 'reference') {
        delete v.fp8_scales;
        delete v.shared_experts;
      }
    }
    const text = JSON.stringify(json, null, 2);
    writeFileSync(join(src, 'variants.json'), text);
    const edited = parseVariantTable(text, 'variants.json');
    const bin = await make(src, 'cpu', join(src, 'build', 'cpu'));
    const tiny = { hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'fp8' };
    for (const [name, mode, words] of [['fused', 'block', 'expected channel or tensor'], ['reference', 'tensor', 'expected channel']] as const) {
      const why = unsupportedReason(edited, findVariant(edited, name)!, { ...tiny, fp8_scales: mode });
      expect(why).toBe(`fp8_scales ${mode} is not supported (${words})`);
      expect(await refusal(bin, ['--variant', name, ...shapeArgs(tiny), '--fp8-scales', mode])).toBe(`moe-bench: variant ${name}: ${why}`);
    }
    // Shared experts on a row without the flag (every row of the repository's table has it now, so only an edited
    // table can show the binary's refusal)
    const shared = { hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'bf16', shared_experts: 2, shared_inter: 64 };
    const whyShared = unsupportedReason(edited, findVariant(edited, 'reference')!, shared);
    expect(whyShared).toMatch(/^shared_experts \(2\) are not supported by this variant/);
    expect(await refusal(bin, ['--variant', 'reference', ...shapeArgs(shared)])).toBe(`moe-bench: variant reference: ${whyShared}`);
    // what the row lists runs, and the run says which scales it used
    const r = await execa(bin, ['--variant', 'fused', ...shapeArgs(tiny), '--fp8-scales', 'tensor', '--iters', '1', '--warmup', '0']);
    const out = BenchOutputSchema.parse(JSON.parse(r.stdout));
    expect(out.config.fp8_scales).toBe('tensor');
    expect(out.check.pass).toBe(true);
    // the repository's rows: every fp8 row takes all three
    for (const v of table.variants.filter((x) => x.dtypes.includes('fp8'))) expect(v.fp8_scales, v.name).toEqual(['channel', 'tensor', 'block']);
  }, 600_000);
});

describe('a tuning table round-trips through the binary', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moefarm-tuning-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of csrc/ (sources only) with one more tuning file, built. */
  async function buildWith(name: string, tuning: unknown): Promise<string> {
    const src = join(dir, name);
    cpSync(CSRC, src, { recursive: true, filter: (p) => !/[/\\](build|results)$/.test(p) });
    writeFileSync(join(src, 'tuning', 'test-cpu.json'), JSON.stringify(tuning, null, 2));
    return make(src, 'cpu', join(src, 'build', 'cpu'));
  }

  it('uses an entry for this CPU (and a "*" entry), says where the value came from, and yields to --tune and --no-tuning-table', async () => {
    const probe = await make(CSRC, 'cpu', csrcBuildDir(CSRC, 'variants-test', 'cpu'));
    const device = BenchOutputSchema.parse(JSON.parse((await execa(probe, ['--model', 'tiny', '--iters', '1', '--warmup', '0'])).stdout)).device.name;
    const tuningFile = {
      schema: 'moefarm.tuning/1',
      about: 'test: one entry for this machine\'s CPU, one for any device',
      entries: [
        { device, variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 3, dtype: 'bf16', tunables: { group: 2 }, measured: 'test' },
        { device: '*', variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 5, dtype: 'bf16', tunables: { group: 16 } },
        // The same shape and tokens as entries.0, for another request: split over 2 GPUs, with tiny-shared's shared
        // experts, with fp8 block scales. Each is used for its request only, and entries.0 for none of them.
        { device, variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 3, dtype: 'bf16', gpus: 2, tunables: { group: 4 } },
        { device, variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 3, dtype: 'bf16', shared_experts: 2, shared_inter: 64, tunables: { group: 1 } },
        { device, variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 3, dtype: 'fp8', fp8_scales: 'block', tunables: { group: 16 } },
      ],
    };
    parseTuningTable(JSON.stringify(tuningFile), 'test-cpu.json', table);  // the coordinator accepts what it writes
    const bin = await buildWith('good', tuningFile);
    const run = async (tokens: number, extra: string[] = []) => {
      const r = await execa(bin, ['--model', 'tiny', '--tokens', String(tokens), '--variant', 'fused', '--iters', '2', '--warmup', '0', ...extra]);
      const out = BenchOutputSchema.parse(JSON.parse(r.stdout));
      expect(out.results[0]!.check.pass).toBe(true);
      return out.results[0]!.tunables;
    };
    expect(await run(3)).toEqual({ group: { value: 2, source: 'tuning_table', origin: 'tuning/test-cpu.json: entries.0' } });
    expect(await run(5)).toEqual({ group: { value: 16, source: 'tuning_table', origin: 'tuning/test-cpu.json: entries.1' } });
    expect(await run(4)).toEqual({ group: { value: 8, source: 'default' } });
    expect(await run(3, ['--tune', 'group=4'])).toEqual({ group: { value: 4, source: 'flag' } });
    expect(await run(3, ['--no-tuning-table'])).toEqual({ group: { value: 8, source: 'default' } });
    const entry = (n: number, group: number) => ({ group: { value: group, source: 'tuning_table', origin: `tuning/test-cpu.json: entries.${n}` } });
    expect(await run(3, ['--gpus', '2'])).toEqual(entry(2, 4));
    expect(await run(3, ['--gpus', '4'])).toEqual({ group: { value: 8, source: 'default' } });
    expect(await run(3, ['--model', 'tiny-shared'])).toEqual(entry(3, 1));
    expect(await run(3, ['--model', 'tiny-shared', '--gpus', '2'])).toEqual({ group: { value: 8, source: 'default' } });
    expect(await run(3, ['--dtype', 'fp8', '--fp8-scales', 'block'])).toEqual(entry(4, 16));
    expect(await run(3, ['--dtype', 'fp8'])).toEqual({ group: { value: 8, source: 'default' } });
    const list = JSON.parse((await execa(bin, ['--list'])).stdout) as { tuning: { files: string[]; entries: Array<Record<string, unknown>> } };
    expect(list.tuning.files).toContain('tuning/test-cpu.json');
    expect(list.tuning.entries.map((e) => e['device'])).toEqual(expect.arrayContaining([device, '*']));
    // --list writes the optional key fields back as the file has them (and only where set).
    const listed = list.tuning.entries.filter((e) => e['file'] === 'tuning/test-cpu.json');
    expect(listed.map((e) => [e['gpus'], e['shared_experts'], e['shared_inter'], e['fp8_scales']])).toEqual([
      [undefined, undefined, undefined, undefined],
      [undefined, undefined, undefined, undefined],
      [2, undefined, undefined, undefined],
      [undefined, 2, 64, undefined],
      [undefined, undefined, undefined, 'block'],
    ]);
  }, 600_000);

  it('refuses a tuning file with a tunable the variant does not have, naming the file and the entry', async () => {
    const bad = {
      schema: 'moefarm.tuning/1',
      entries: [{ device: '*', variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'bf16', tunables: { slice: 16 } }],
    };
    expect(() => parseTuningTable(JSON.stringify(bad), 'tuning/test-cpu.json', table)).toThrow(
      "tuning/test-cpu.json: entries.0: variant fused: unknown tunable 'slice' (tunables: group)",
    );
    const bin = await buildWith('bad', bad);
    expect(await refusal(bin, ['--model', 'tiny'])).toBe(
      "moe-bench: tuning/test-cpu.json: entries.0: variant fused: unknown tunable 'slice' (tunables: group) (embedded at build time)",
    );
  }, 600_000);

  it('refuses entries whose optional key fields cannot describe a run, in the coordinator\'s words and the binary\'s', async () => {
    const base = { device: '*', variant: 'fused', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'bf16', tunables: { group: 2 } };
    const file = (e: Record<string, unknown>) => JSON.stringify({ schema: 'moefarm.tuning/1', entries: [{ ...base, ...e }] });
    expect(() => parseTuningTable(file({ shared_experts: 2 }), 'tuning/test-cpu.json', table)).toThrow(
      'tuning/test-cpu.json: entries.0: shared_experts and shared_inter go together (both absent: no shared experts)',
    );
    expect(() => parseTuningTable(file({ fp8_scales: 'block' }), 'tuning/test-cpu.json', table)).toThrow(
      "tuning/test-cpu.json: entries.0.fp8_scales: only for dtype fp8 (this entry's dtype is bf16)",
    );
    expect(() => parseTuningTable(file({ gpus: 1 }), 'tuning/test-cpu.json', table)).toThrow(/entries\.0\.gpus/);
    // Two entries that differ only in gpus are two keys; the same gpus twice is one key twice.
    const two = (g1: number, g2: number) =>
      JSON.stringify({ schema: 'moefarm.tuning/1', entries: [{ ...base, gpus: g1 }, { ...base, gpus: g2 }] });
    expect(() => parseTuningTable(two(2, 4), 'tuning/test-cpu.json', table)).not.toThrow();
    expect(() => parseTuningTable(two(2, 2), 'tuning/test-cpu.json', table)).toThrow('tuning/test-cpu.json: entries.1: the same key as entries.0');
    const bin = await buildWith('bad-fp8', JSON.parse(file({ fp8_scales: 'block' })));
    expect(await refusal(bin, ['--model', 'tiny'])).toBe(
      "moe-bench: tuning/test-cpu.json: entries.0.fp8_scales: only for dtype fp8 (this entry's dtype is bf16) (embedded at build time)",
    );
  }, 600_000);
});
