/**
 * Loading a sweep's results from the database into plain records, grouped by
 * point (all parameters but the variant) so that variants can be compared.
 */
import type { Db } from '../db/client.js';
import { UsageError } from '../errors.js';
import { PointSchema, type Point } from '../schema/sweep.js';
import { canonicalJson } from '../util/hash.js';
import { z } from 'zod';

export interface VariantRun {
  runId: string;
  rep: number;
  samples: number[];
  rounds: number[];
  median: number;
  flags: string[];
  interleaved: boolean;
}

export interface PointGroup {
  key: string;
  label: string;
  point: Omit<Point, 'variant'>;
  variants: Map<string, VariantRun[]>;
}

export interface SweepResults {
  sweepId: string;
  name: string;
  baselineFromSpec: string | null;
  groups: PointGroup[];
  /** Runs that ended without a result, by status. */
  failures: Record<string, number>;
}

const ParamsSchema = z.array(z.object({ hash: z.string(), point: PointSchema }));
const numbers = z.array(z.number());

export async function loadSweepResults(db: Db, sweepId: string): Promise<SweepResults> {
  const sweep = await db.sweep.findUnique({ where: { id: sweepId } });
  if (!sweep) throw new UsageError(`sweep ${sweepId}: no such sweep in the database`);
  let baselineFromSpec: string | null = null;
  try {
    const spec = JSON.parse(sweep.spec) as { baseline?: { variant?: string } };
    baselineFromSpec = spec.baseline?.variant ?? null;
  } catch {
    /* an unplanned sweep has no spec */
  }
  const runs = await db.run.findMany({ where: { sweepId }, include: { results: true }, orderBy: [{ rep: 'asc' }, { id: 'asc' }] });
  const groups = new Map<string, PointGroup>();
  const failures: Record<string, number> = {};
  for (const run of runs) {
    if (run.status !== 'done') {
      failures[run.status] = (failures[run.status] ?? 0) + 1;
      continue;
    }
    const params = ParamsSchema.parse(JSON.parse(run.params));
    for (const res of run.results) {
      const p = params.find((x) => x.point.variant === res.variant)?.point ?? params[0]!.point;
      const { variant: _v, ...rest } = p;
      const key = canonicalJson(rest);
      let g = groups.get(key);
      if (!g) {
        g = { key, label: '', point: rest, variants: new Map() };
        groups.set(key, g);
      }
      const list = g.variants.get(res.variant) ?? [];
      list.push({
        runId: run.id,
        rep: run.rep,
        samples: numbers.parse(JSON.parse(res.samplesUs)),
        rounds: numbers.parse(JSON.parse(res.rounds)),
        median: res.median,
        flags: run.flags ? run.flags.split(',').filter(Boolean) : [],
        interleaved: params.length > 1,
      });
      g.variants.set(res.variant, list);
    }
  }
  const list = [...groups.values()];
  labelGroups(list);
  return { sweepId, name: sweep.name, baselineFromSpec, groups: list, failures };
}

/** A short label per group: the shape, then only the parameters that differ between groups. */
function labelGroups(groups: PointGroup[]): void {
  const keys = ['backend', 'tokens', 'dtype', 'warmup', 'iters', 'rotate', 'cold_l2', 'clock', 'power'] as const;
  const varying = keys.filter((k) => new Set(groups.map((g) => canonicalJson(g.point[k]))).size > 1);
  for (const g of groups) {
    const p = g.point;
    const shape = p.model ?? `h${p.hidden}/i${p.inter}/e${p.experts}/k${p.topk}`;
    const parts = [shape, `T=${p.tokens}`, p.dtype];
    for (const k of varying) {
      if (k === 'tokens' || k === 'dtype') continue;
      const v = p[k];
      parts.push(`${k}=${typeof v === 'object' && v !== null ? Object.entries(v).map(([a, b]) => `${a}:${String(b)}`).join(',') : String(v)}`);
    }
    g.label = parts.join(' ');
  }
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}
