/**
 * The builds of a sweep, resolved at submit: each named build's source read
 * (a git ref of the submitter's repository, or a folder as it is on disk),
 * described (commit, dirty), packed into a bundle under its source hash and
 * checked against the size limits, and its variant table read from that very
 * source, so every point is checked against the build that will run it.
 *
 * Without `builds:` a sweep has one build, `default`: the submitter's csrc/
 * (or `--source DIR`). With `source: worker` nothing travels: each worker
 * builds its own checkout, and the points are checked against the
 * submitter's table (the best available; a worker whose checkout differs
 * may still refuse a point, as `invalid`).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleMaxBytes, csrcDir } from '../config.js';
import { UsageError } from '../errors.js';
import { bundleLimits, packBundle } from '../source/bundle.js';
import { describeDir, describeGitRef, manifestOf, type DescribedSource, type SourceMeta } from '../source/describe.js';
import { SourceError, type SourceSnapshot } from '../source/inputs.js';
import { buildNames, type Sweep } from '../schema/sweep.js';
import { parseVariantTable, type VariantTable } from '../schema/variant-table.js';

export const VARIANT_TABLE_FILE = 'variants.json';

export type BuildSource =
  | { kind: 'bundle'; hash: string; blob: Buffer; meta: SourceMeta; files: number; bytes: number }
  | { kind: 'worker' };

export interface PlanBuild {
  name: string;
  /** Extra compiler flags (allow-listed by the sweep schema). */
  flags: string[];
  source: BuildSource;
  /** The variant table the points of this build are checked against. */
  table: VariantTable;
  /** For messages: `build change (dir ./csrc)`. */
  label: string;
}

export interface ResolveOptions {
  /** Sweep file name, for messages. */
  file?: string;
  /**
   * `--source DIR`: the source tree (default: this checkout's csrc/). A sweep without builds measures
   * it as it is on disk; `git:` builds are read from the repository holding it, at the same folder.
   */
  sourceDir?: string;
  /** Base of relative `dir:` folders (default: the current directory). */
  cwd?: string;
}

export function resolveBuilds(sweep: Sweep, opts: ResolveOptions = {}): PlanBuild[] {
  const file = opts.file ?? 'sweep';
  const cwd = opts.cwd ?? process.cwd();
  const sourceDir = resolve(cwd, opts.sourceDir ?? csrcDir());
  const flagsOf = (name: string) => [...(sweep.builds?.[name]?.flags ?? sweep.build?.flags ?? [])];
  return buildNames(sweep).map((name) => {
    const spec = sweep.builds?.[name];
    const where = spec ? `${file}: builds.${name}` : `${file}: ${opts.sourceDir !== undefined ? '--source' : 'the source (this checkout\'s csrc/)'}`;
    try {
      if (sweep.source === 'worker') {
        const tableFile = join(sourceDir, VARIANT_TABLE_FILE);
        let text: string;
        try {
          text = readFileSync(tableFile, 'utf8');
        } catch (err) {
          throw new UsageError(`${file}: source: worker: the points are checked against ${tableFile}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
        }
        let table: VariantTable;
        try {
          table = parseVariantTable(text, tableFile);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        return { name, flags: flagsOf(name), source: { kind: 'worker' as const }, table, label: `build ${name} (each worker's own checkout)` };
      }
      let described: DescribedSource;
      let label: string;
      if (spec?.git !== undefined) {
        label = `git ${spec.git}`;
        described = describeGitRef(sourceDir, spec.git, label, `${where}.git`);
      } else {
        const dir = spec?.dir !== undefined ? resolve(cwd, spec.dir) : sourceDir;
        label = `dir ${spec?.dir ?? opts.sourceDir ?? dir}`;
        described = describeDir(dir, label, manifestOf(sourceDir));
      }
      const table = tableOf(described.snapshot, `${where} (${label}): ${VARIANT_TABLE_FILE}`);
      const blob = packBundle(described.snapshot);
      checkSize(blob, described.snapshot, where);
      const source: BuildSource = { kind: 'bundle', hash: described.snapshot.hash, blob, meta: described.meta, files: described.snapshot.files.length, bytes: described.snapshot.bytes };
      return { name, flags: flagsOf(name), source, table, label: `build ${name} (${label})` };
    } catch (err) {
      if (err instanceof SourceError) throw new UsageError(err.message.startsWith(file) ? err.message : `${where}: ${err.message}`);
      throw err;
    }
  });
}

function tableOf(snapshot: SourceSnapshot, where: string): VariantTable {
  const f = snapshot.files.find((x) => x.path === VARIANT_TABLE_FILE);
  if (!f) throw new UsageError(`${where}: not in this source; its variants and shape limits cannot be checked (a source older than the variant table cannot be submitted)`);
  try {
    return parseVariantTable(f.data.toString('utf8'), where);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function checkSize(blob: Buffer, snapshot: SourceSnapshot, where: string): void {
  const limits = bundleLimits();
  if (blob.length > bundleMaxBytes()) {
    throw new UsageError(`${where}: the source bundle is ${blob.length} bytes compressed (${snapshot.files.length} files, ${snapshot.bytes} bytes), more than the limit of ${bundleMaxBytes()} (MOEFARM_BUNDLE_MAX_BYTES); are large files matched by build-inputs.txt?`);
  }
  if (snapshot.files.length > limits.maxFiles) throw new UsageError(`${where}: ${snapshot.files.length} build inputs, more than a worker accepts (${limits.maxFiles})`);
  if (snapshot.bytes > limits.maxBytes) throw new UsageError(`${where}: the build inputs are ${snapshot.bytes} bytes, more than a worker accepts (${limits.maxBytes})`);
}
