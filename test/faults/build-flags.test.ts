/**
 * The sweep's `build: { flags: [...] }`: allow-listed, part of the sweep id and
 * of every point's hash, carried to the job, and accepted by the real compiler.
 */
import { describe, expect, it } from 'vitest';
import { csrcDir } from '../../src/config.js';
import { toJob } from '../../src/queue/job.js';
import { BUILD_FLAG_RULES } from '../../src/schema/sweep.js';
import { planSweep } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { ensureBinary } from '../../worker/build.js';
import { TEST_CACHE } from '../helpers/env.js';
import { tempDir } from '../helpers/services.js';

const base = 'name: f\npool: p\nmatrix:\n  variant: [reference, fused]\n  model: tiny\n';
const FLAGS = ['-O2', '-DNDEBUG', '-g', '-march=x86-64-v2', '-fno-omit-frame-pointer', '-funroll-loops'];

describe('build flags', () => {
  it('are part of the sweep id and of each point hash; none keeps the old hashes', () => {
    const plain = planSweep(parseSweepText(base, 'a.yaml'));
    const empty = planSweep(parseSweepText(base + 'build: {flags: []}\n', 'a.yaml'));
    const flagged = planSweep(parseSweepText(base + `build: {flags: [${FLAGS.join(', ')}]}\n`, 'a.yaml'));
    const other = planSweep(parseSweepText(base + 'build: {flags: [-O3]}\n', 'a.yaml'));
    expect(empty.points.map((p) => p.hash)).toEqual(plain.points.map((p) => p.hash));
    expect(plain.points[0]!.point.build_flags).toBeUndefined();
    expect(flagged.points[0]!.point.build_flags).toEqual(FLAGS);
    const hashes = new Set([plain, flagged, other].flatMap((pl) => pl.points.map((p) => p.hash)));
    expect(hashes.size).toBe(6);
    expect(new Set([plain.sweepId, flagged.sweepId, other.sweepId]).size).toBe(3);
    expect(toJob(flagged, flagged.runs[0]!, 0).builds.map((b) => b.flags)).toEqual([FLAGS]);
    expect(toJob(plain, plain.runs[0]!, 0).builds.map((b) => b.flags)).toEqual([[]]);
  });

  it('are matched whole: nothing of a flag reaches a shell', () => {
    for (const rule of BUILD_FLAG_RULES) {
      expect(rule.pattern.source.startsWith('^') && rule.pattern.source.endsWith('$')).toBe(true);
      expect(rule.pattern.source).not.toMatch(/\.\*|\\s|\[\^/); // no wildcards, no spaces, no negated classes
    }
    for (const f of FLAGS) expect(BUILD_FLAG_RULES.some((r) => r.pattern.test(f))).toBe(true);
    for (const bad of ['-O2 -O3', '-O2;', '-O2\n', '-g4', '-march=native', '-DNDEBUG=1', '-O2 ', ' -O2']) {
      expect(BUILD_FLAG_RULES.some((r) => r.pattern.test(bad)), bad).toBe(false);
    }
  });

  it('build with the real compiler, into their own cache entry', async () => {
    const t = tempDir('flags');
    try {
      const plain = await ensureBinary({ csrc: csrcDir(), cache: TEST_CACHE, backend: 'cpu', arch: 'sm_90a' }); // cached by other tests
      const flagged = await ensureBinary({ csrc: csrcDir(), cache: t.dir, backend: 'cpu', arch: 'sm_90a', extraFlags: FLAGS });
      expect(flagged.info.key).not.toBe(plain.info.key);
      for (const f of FLAGS) expect(flagged.info.flags).toContain(f);
    } finally {
      t.cleanup();
    }
  });
});
