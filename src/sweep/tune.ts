/**
 * Tunables as a sweep axis (`matrix.tune`): the settings a variant is tried
 * at, their check against a build's variant table, and the one way a setting
 * is written for people (`slice=32 threads=256`), for the binary
 * (`--tune persistent-splitk:slice=32,threads=256`) and in the database
 * (Result.tune: the text for people, '' when the binary chose every value).
 */
import { UsageError } from '../errors.js';
import type { Sweep, Tune } from '../schema/sweep.js';
import { findVariant, tunableReason } from '../schema/variant-table.js';
import type { PlanBuild } from './builds.js';

/** Tunable values asked of one variant at one point. */
export type TuneSetting = Record<string, number>;

/** `slice=32 threads=256` (names in order), or '' for none: the arm label's second half and Result.tune. */
export function tuneText(tune: TuneSetting | undefined | null): string {
  if (!tune) return '';
  return Object.keys(tune)
    .sort()
    .map((k) => `${k}=${tune[k]}`)
    .join(' ');
}

/** Reads tuneText back (Result.tune); '' is no setting. Throws on text tuneText never writes. */
export function parseTuneText(text: string): TuneSetting {
  const out: TuneSetting = {};
  for (const part of text.split(' ').filter(Boolean)) {
    const m = /^([a-z][a-z0-9_]*)=(-?\d+)$/.exec(part);
    if (!m) throw new Error(`not a tunable setting: "${part}" (expected NAME=INTEGER)`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** The binary's argument for one variant: `VARIANT:slice=32,threads=256`. */
export function tuneArg(variant: string, tune: TuneSetting): string {
  return `${variant}:${tuneText(tune).replace(/ /g, ',')}`;
}

/** How an arm is named: the variant, then its setting when it has one (`persistent-splitk slice=32`). */
export function variantLabel(variant: string, tune: string | TuneSetting | undefined | null): string {
  const text = typeof tune === 'string' ? tune : tuneText(tune);
  return text ? `${variant} ${text}` : variant;
}

/**
 * The settings a variant is run at: every combination of its tunables' listed values (names in
 * order, the last fastest), or one `undefined` (no --tune) for a variant matrix.tune does not list.
 */
export function tuneSettings(tune: Tune | undefined, variant: string): Array<TuneSetting | undefined> {
  const spec = tune?.[variant];
  if (!spec) return [undefined];
  const names = Object.keys(spec).sort();
  let out: TuneSetting[] = [{}];
  for (const name of names) out = out.flatMap((s) => spec[name]!.map((v) => ({ ...s, [name]: v })));
  return out;
}

/** The most settings any one variant of the sweep has (1 without matrix.tune). */
export function maxSettings(sweep: Sweep): number {
  return Math.max(1, ...sweep.matrix.variant.map((v) => tuneSettings(sweep.matrix.tune, v).length));
}

/** Settings of every variant together: how many arms one point has per build. */
export function settingsPerPoint(sweep: Sweep): number {
  return sweep.matrix.variant.reduce((n, v) => n + tuneSettings(sweep.matrix.tune, v).length, 0);
}

/**
 * matrix.tune checked against a build's own variant table (the binary's --tune rule, in its words): an
 * unknown tunable or a value outside its range is refused naming the variant, the tunable and the
 * field of the sweep file. A variant the build does not have is left to the point check, which says so.
 */
export function checkTune(sweep: Sweep, build: PlanBuild, file: string): void {
  for (const [variant, tunables] of Object.entries(sweep.matrix.tune ?? {})) {
    const spec = findVariant(build.table, variant);
    if (!spec) continue;
    for (const [name, values] of Object.entries(tunables)) {
      values.forEach((value, i) => {
        const why = tunableReason(spec, name, value);
        if (why) {
          const at = why.startsWith('unknown tunable') ? `matrix.tune.${variant}.${name}` : `matrix.tune.${variant}.${name}[${i}]`;
          throw new UsageError(`${file}: ${at}: variant ${variant} of ${build.label}: ${why}`);
        }
      });
    }
  }
}
