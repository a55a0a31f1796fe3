import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/errors.js';
import { resolveBuilds } from '../src/sweep/builds.js';
import { expandPoints, planSweep, pointHash } from '../src/sweep/expand.js';
import type { Sweep } from '../src/schema/sweep.js';
import { loadSweepFile, parseSweepText } from '../src/sweep/load.js';
import { ROOT, tempDir } from './helpers/services.js';

/** The points of a sweep over its builds, resolved from this checkout. */
const pointsOf = (s: Sweep, file = 'sweep') => expandPoints(s, resolveBuilds(s, { file }), file);

const base = `
name: t
pool: p
matrix:
  variant: [reference, fused]
  model: tiny
`;

function parseError(text: string): string {
  try {
    parseSweepText(text, 'bad.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected the sweep to be refused');
}

describe('sweep files', () => {
  it('finds duplicate keys in time linear in the keys (9,900 unknown keys, the most the line cap lets through)', () => {
    // The yaml package's own check compares every key with every earlier one of its map: 20,000 keys took 3.8 s.
    const keys = Array.from({ length: 9_900 }, (_, i) => `unknown_key_${i}: ${i}`).join('\n');
    const t0 = performance.now();
    const message = parseError(`${base}${keys}\n`);
    const ms = performance.now() - t0;
    expect(message).toMatch(/^bad\.yaml: \(top level\): unknown fields 'unknown_key_0', .* and 9895 more$/);
    expect(ms).toBeLessThan(2000);
    // And a duplicate at the very end of them is still found, with both lines.
    expect(parseError(`${base}${keys}\nunknown_key_7: again\n`)).toMatch(/map key 'unknown_key_7' appears twice \(first at line 14\)/);
  });

  it('accepts every sweep shipped in sweeps/', async () => {
    const files = readdirSync(join(ROOT, 'sweeps')).filter((f) => f.endsWith('.yaml'));
    expect(files).toEqual(expect.arrayContaining(['demo.yaml', 'qwen3-decode.yaml', 'ab-h100.yaml']));
    // `dir:` builds are relative to where the submit runs: give them a folder where each is a copy of csrc/.
    const t = tempDir('sweeps-cwd');
    try {
      for (const f of files) {
        const s = await loadSweepFile(join(ROOT, 'sweeps', f));
        for (const b of Object.values(s.builds ?? {})) {
          if (b.dir) cpSync(join(ROOT, 'csrc'), join(t.dir, b.dir), { recursive: true, filter: (src) => !/[\\/]csrc[\\/]build([\\/]|$)/.test(src) });
        }
        // A sweep prepared for variants not written yet says so on its first line; it must be refused for exactly that.
        if (readFileSync(join(ROOT, 'sweeps', f), 'utf8').startsWith('# PREPARED, NOT RUN')) {
          expect(() => planSweep(s, { file: f, cwd: t.dir })).toThrow(/matrix\.variant\[\d\]: '[a-z-]+' is not a cuda variant/);
          continue;
        }
        expect(planSweep(s, { file: f, cwd: t.dir }).runs.length).toBeGreaterThan(0);
      }
    } finally {
      t.cleanup();
    }
  });

  it('fills defaults and reads a single value as a list of one', () => {
    const s = parseSweepText(base + '  tokens: 4\n', 'ok.yaml');
    expect(s.repeat).toBe(1);
    expect(s.matrix.tokens).toEqual([4]);
    expect(s.matrix.backend).toEqual(['cpu']);
    expect(s.matrix.clock).toEqual(['default']);
  });

  it.each([
    ['a negative token count', base + '  tokens: [1, -3]\n', 'bad.yaml: matrix.tokens[1]: expected a token count'],
    ['a string where a number goes', base + '  iters: lots\n', 'bad.yaml: matrix.iters[0]: expected an iteration count'],
    ['an unknown axis', base + '  colour: [red]\n', "bad.yaml: matrix: unknown field 'colour'"],
    ['an unknown top-level field', base + 'extra: 1\n', "bad.yaml: (top level): unknown field 'extra'"],
    ['a bad clock', base + '  clock: [{lock: fast}]\n', 'bad.yaml: matrix.clock[0]'],
    ['a path in the name', base.replace('name: t', 'name: ../../x'), 'bad.yaml: name: expected a sweep name'],
    ['shell syntax in the pool', base.replace('pool: p', "pool: '; rm -rf /'"), 'bad.yaml: pool: expected a pool name'],
    ['no variant', 'name: t\nmatrix:\n  model: tiny\n', 'bad.yaml: matrix.variant: missing'],
    ['model and shape both', base + '  shape: [{hidden: 64, inter: 32, experts: 4, topk: 2}]\n', 'exactly one of matrix.model or matrix.shape'],
    ['a baseline not in the matrix', base + 'baseline: {variant: nope}\n', "bad.yaml: baseline.variant: expected one of the sweep's variants"],
    ['malformed YAML', 'name: [unclosed\n', 'bad.yaml: line 2, column 1: malformed YAML'],
    ['a list at the top', '- a\n- b\n', 'expected a mapping at the top level'],
    ['topk above experts', 'name: t\nmatrix:\n  variant: reference\n  shape: [{hidden: 64, inter: 32, experts: 4, topk: 8}]\n', 'bad.yaml: matrix.shape[0]: expected topk <= experts'],
  ])('refuses %s, naming the field', (_what, text, expected) => {
    expect(parseError(text)).toContain(expected);
  });

  it('refuses a variant its backend does not have, unless excluded', () => {
    const s = parseSweepText(base.replace('[reference, fused]', '[reference, separate]'), 'v.yaml');
    expect(() => pointsOf(s, 'v.yaml')).toThrow(/v\.yaml: matrix\.variant\[1\]: 'separate' is not a cpu variant/);
    const ok = parseSweepText(base.replace('[reference, fused]', '[reference, separate]') + 'exclude:\n  - {variant: separate}\n', 'v.yaml');
    expect(pointsOf(ok).map((p) => p.point.variant)).toEqual(['reference']);
  });

  it('refuses a matrix past the run limit unless allowed', () => {
    const s = parseSweepText(base + '  tokens: [1, 2, 3, 4, 5]\nrepeat: 10\n', 'big.yaml');
    expect(() => planSweep(s, { file: 'big.yaml', maxRuns: 50 })).toThrow(/expands to 100 runs .* --allow-large/);
    expect(planSweep(s, { file: 'big.yaml', maxRuns: 50, allowLarge: true }).runs).toHaveLength(100);
  });
});

describe('expansion and hashing', () => {
  it('expands the cartesian product minus excludes, in a stable order', () => {
    const s = parseSweepText(base + '  tokens: [1, 8]\n  dtype: [bf16, fp16]\nexclude:\n  - {variant: fused, tokens: 8}\n', 'x.yaml');
    const pts = pointsOf(s);
    expect(pts).toHaveLength(2 * 2 * 2 - 2);
    expect(pts.some((p) => p.point.variant === 'fused' && p.point.tokens === 8)).toBe(false);
    expect(pts[0]!.point).toMatchObject({ variant: 'reference', tokens: 1, dtype: 'bf16', hidden: 256, experts: 16 });
  });

  it('gives a point the same hash whatever the sweep or key order, and a different one for any change', () => {
    const a = pointsOf(parseSweepText(base, 'a.yaml'));
    const reordered = `
matrix:
  model: tiny
  variant: [reference, fused]
pool: other
name: another-sweep
repeat: 4
`;
    const b = pointsOf(parseSweepText(reordered, 'b.yaml'));
    expect(b.map((p) => p.hash)).toEqual(a.map((p) => p.hash));
    const p0 = a[0]!.point;
    expect(pointHash({ ...p0, tokens: 2 })).not.toBe(a[0]!.hash);
    expect(pointHash({ ...p0, clock: { lock: 1500 } })).not.toBe(a[0]!.hash);
    expect(a[0]!.hash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('derives run ids from sweep id, point hash and repetition; the sweep id from its content', () => {
    const s = parseSweepText(base + 'repeat: 2\n', 'a.yaml');
    const plan = planSweep(s);
    expect(plan.runs).toHaveLength(4);
    expect(new Set(plan.runs.map((r) => r.id)).size).toBe(4);
    expect(plan.runs[0]!.id).toBe(`${plan.sweepId}-${plan.points[0]!.hash}-r0`);
    expect(planSweep(parseSweepText(base + 'repeat: 2\n', 'again.yaml')).sweepId).toBe(plan.sweepId);
    expect(planSweep(parseSweepText(base + 'repeat: 3\n', 'a.yaml')).sweepId).not.toBe(plan.sweepId);
  });

  it('groups the variants of a point into one run when interleaving', () => {
    const s = parseSweepText(base + '  tokens: [1, 8]\ninterleave: true\nrepeat: 2\n', 'i.yaml');
    const plan = planSweep(s);
    expect(plan.points).toHaveLength(4);
    expect(plan.runs).toHaveLength(4);
    expect(plan.runs[0]!.points.map((p) => p.point.variant)).toEqual(['reference', 'fused']);
  });
});

describe('shared experts and fp8 through the sweep', () => {
  it('carries a preset\'s shared experts into its points and the binary\'s arguments, and leaves other points as they were', async () => {
    const { binaryArgs } = await import('../worker/args.js');
    const s = parseSweepText(base.replace('model: tiny', 'model: [tiny, tiny-shared]') + '  dtype: [bf16, fp8]\n', 's.yaml');
    const pts = pointsOf(s);
    const shared = pts.filter((p) => p.point.model === 'tiny-shared');
    expect(shared.length).toBe(4);
    for (const p of shared) expect(p.point).toMatchObject({ shared_experts: 2, shared_inter: 64, hidden: 256 });
    for (const p of pts.filter((q) => q.point.model === 'tiny')) expect('shared_experts' in p.point).toBe(false);
    expect(pts.filter((p) => p.point.dtype === 'fp8')).toHaveLength(4);
    // An explicit shape with shared experts reaches the binary as flags (a preset name carries them itself).
    const t = parseSweepText(`name: t\npool: p\nmatrix:\n  variant: fused\n  shape: {hidden: 256, inter: 128, experts: 16, topk: 4, shared_experts: 1, shared_inter: 32}\n`, 'e.yaml');
    const [p] = pointsOf(t);
    expect(p!.point).toMatchObject({ model: null, shared_experts: 1, shared_inter: 32 });
    const args = binaryArgs({ points: [{ point: p!.point, build: 'default', hash: p!.hash }], seed: 1, rounds: 1 } as never, null);
    expect(args.join(' ')).toContain('--shared-experts 1 --shared-inter 32');
  });

  it('refuses at submit a variant whose table row does not run shared experts or fp8, naming the field', () => {
    // Every row of this tree's table runs shared experts; a submitted source whose row does not (a copy of csrc/
    // with ep-separate's flag taken out) is refused by its own table.
    const t = tempDir('sweeps-shared');
    try {
      cpSync(join(ROOT, 'csrc'), join(t.dir, 'src'), { recursive: true, filter: (src) => !/[\\/]csrc[\\/]build([\\/]|$)/.test(src) });
      const tableFile = join(t.dir, 'src', 'variants.json');
      const table = JSON.parse(readFileSync(tableFile, 'utf8')) as { variants: Array<{ name: string; shared_experts?: boolean }> };
      delete table.variants.find((v) => v.name === 'ep-separate')!.shared_experts;
      writeFileSync(tableFile, JSON.stringify(table));
      const shared = parseSweepText(`name: t\npool: p\nbuilds:\n  b: { dir: src }\nmatrix:\n  backend: cuda\n  variant: ep-separate\n  model: tiny-shared\n`, 's.yaml');
      expect(() => planSweep(shared, { file: 's.yaml', cwd: t.dir })).toThrow(/matrix\.model\[0\]: variant ep-separate of .*shared_experts \(2\) are not supported by this variant/);
      // this tree's own table takes the same point
      const own = parseSweepText(`name: t\npool: p\nmatrix:\n  backend: cuda\n  variant: ep-separate\n  model: tiny-shared\n`, 's.yaml');
      expect(pointsOf(own, 's.yaml').map((p) => p.point.shared_experts)).toEqual([2]);
    } finally {
      t.cleanup();
    }
    const fp8 = parseSweepText(`name: t\npool: p\nmatrix:\n  backend: cuda\n  variant: persistent-splitk\n  model: tiny\n  dtype: fp8\n`, 'f.yaml');
    expect(() => pointsOf(fp8, 'f.yaml')).toThrow(/matrix\.dtype\[0\]: variant persistent-splitk .*dtype fp8 is not supported \(expected fp16 or bf16\)/);
    // separate and persistent-flat take fp8 (e4m3 weights on the GPU too)
    const fp8ok = parseSweepText(`name: t\npool: p\nmatrix:\n  backend: cuda\n  variant: [separate, persistent-flat]\n  model: tiny\n  dtype: fp8\n`, 'f.yaml');
    expect(pointsOf(fp8ok, 'f.yaml').map((p) => [p.point.variant, p.point.dtype])).toEqual([['separate', 'fp8'], ['persistent-flat', 'fp8']]);
    expect(parseError(base + '  shape: {hidden: 256, inter: 128, experts: 16, topk: 4, shared_experts: 2}\n')).toMatch(/shared_experts \(> 0\) and shared_inter together/);
  });
});

describe('fp8 scales through the sweep (matrix.fp8_scales)', () => {
  const fp8 = `name: t\npool: p\nmatrix:\n  variant: [reference, fused]\n  model: tiny\n  dtype: fp8\n`;

  it('makes tensor and block part of the point and its hash, leaves channel as the point without the axis, and passes --fp8-scales', async () => {
    const { binaryArgs } = await import('../worker/args.js');
    const plain = pointsOf(parseSweepText(fp8, 'a.yaml'));
    const pts = pointsOf(parseSweepText(fp8 + '  fp8_scales: [channel, tensor, block]\n', 'f.yaml'));
    expect(pts.map((p) => [p.point.variant, p.point.fp8_scales ?? 'channel'])).toEqual([
      ['reference', 'channel'], ['reference', 'tensor'], ['reference', 'block'], ['fused', 'channel'], ['fused', 'tensor'], ['fused', 'block'],
    ]);
    // channel is the binary's default: the same points, the same hashes, as fp8 before the axis
    const channel = pts.filter((p) => p.point.fp8_scales === undefined);
    expect(channel.map((p) => p.hash)).toEqual(plain.map((p) => p.hash));
    for (const p of channel) expect('fp8_scales' in p.point).toBe(false);
    expect(new Set(pts.map((p) => p.hash)).size).toBe(6);
    const args = (p: (typeof pts)[number]) => binaryArgs({ points: [{ point: p.point, build: 'default', hash: p.hash }], seed: 1, rounds: 1 } as never, null);
    expect(args(pts[2]!).join(' ')).toContain('--dtype fp8 --fp8-scales block');
    expect(args(pts[1]!).join(' ')).toContain('--dtype fp8 --fp8-scales tensor');
    expect(args(pts[0]!)).not.toContain('--fp8-scales');
    // interleaved: the variants of one mode share a job, the modes do not
    const plan = planSweep(parseSweepText(fp8 + '  fp8_scales: [channel, block]\ninterleave: true\n', 'i.yaml'));
    expect(plan.runs.map((r) => r.points.map((p) => `${p.point.variant}/${p.point.fp8_scales ?? 'channel'}`))).toEqual([
      ['reference/channel', 'fused/channel'], ['reference/block', 'fused/block'],
    ]);
    // the compare table's point label tells the modes apart (channel, the default, is plain fp8)
    const { pointLabel } = await import('../src/results/load.js');
    expect(pts.slice(0, 3).map((p) => pointLabel(p.point))).toEqual(['tiny T=1 fp8', 'tiny T=1 fp8/tensor', 'tiny T=1 fp8/block']);
  });

  it('refuses it without fp8, on points of another dtype unless excluded, an unknown mode, and a mode a variant\'s row does not take', () => {
    expect(parseError(fp8.replace('dtype: fp8', 'dtype: bf16') + '  fp8_scales: block\n')).toContain(
      'bad.yaml: matrix.fp8_scales: applies to dtype fp8 only (the scales of e4m3 weights), and matrix.dtype has no fp8 (bf16)');
    expect(parseError(fp8 + '  fp8_scales: [row]\n')).toContain('bad.yaml: matrix.fp8_scales[0]: expected what an fp8 scale covers: channel | tensor | block');
    const mixed = fp8.replace('dtype: fp8', 'dtype: [bf16, fp8]') + '  fp8_scales: [channel, block]\n';
    expect(() => pointsOf(parseSweepText(mixed, 'm.yaml'), 'm.yaml')).toThrow(
      'm.yaml: matrix.fp8_scales[1]: fp8_scales block applies to dtype fp8 only (the scales of e4m3 weights), and this point\'s dtype is bf16; add an exclude rule {dtype: bf16, fp8_scales: block}');
    const excluded = pointsOf(parseSweepText(mixed + 'exclude:\n  - {dtype: bf16, fp8_scales: block}\n', 'm.yaml'));
    expect(excluded.map((p) => `${p.point.dtype}/${p.point.fp8_scales ?? '-'}`)).toEqual(['bf16/-', 'fp8/-', 'fp8/block', 'bf16/-', 'fp8/-', 'fp8/block']);
    // The variant table says which modes a row takes ("fp8_scales"; absent: channel only), in the binary's words.
    const s = parseSweepText(fp8.replace('[reference, fused]', 'fused') + '  fp8_scales: [tensor, block]\n', 'v.yaml');
    const builds = resolveBuilds(s, { file: 'v.yaml' });
    const t = builds[0]!.table;
    builds[0]!.table = { ...t, variants: t.variants.map((v) => (v.name === 'fused' ? { ...v, fp8_scales: ['channel' as const, 'tensor' as const] } : v)) };
    expect(() => expandPoints(s, builds, 'v.yaml')).toThrow(
      /^v\.yaml: matrix\.fp8_scales\[1\]: variant fused of .*cannot run this point: fp8_scales block is not supported \(expected channel or tensor\); drop it or add an exclude rule/);
    builds[0]!.table = { ...t, variants: t.variants.map((v) => (v.name === 'fused' ? { ...v, fp8_scales: undefined } : v)) };
    expect(() => expandPoints(s, builds, 'v.yaml')).toThrow(/matrix\.fp8_scales\[0\]: .*fp8_scales tensor is not supported \(expected channel\)/);
  });
});

describe('the plan text', () => {
  it('writes each run\'s points as their canonical JSON', async () => {
    const { pointsJson } = await import('../src/sweep/expand.js');
    const { canonicalJson } = await import('../src/util/hash.js');
    const plan = planSweep(parseSweepText(base + '  tokens: [1, 8]\ninterleave: true\n', 'p.yaml'));
    for (const r of plan.runs) expect(pointsJson(r.points)).toBe(canonicalJson(r.points));
    for (const p of plan.points) expect(pointHash(p.point)).toBe(p.hash);
  });
});
