/**
 * A result's per-sample lists as the database holds them: `Result.samplesUs`
 * (every timing sample, µs), `Result.rounds` (the round of each) and
 * `Result.smClockMhz` (the SM clock the kernel measured during each, CUDA
 * only), each a JSON array, one entry per sample. They are the only copy of
 * the samples: every statistic is computed from them (the summary columns
 * `n`, `median`, `p10`, `p90` are the binary's, for listing: see
 * prisma/models.prisma). db/record.ts writes them with sampleColumns; every
 * reader reads them with readSamples.
 */
import type { VariantResult } from '../schema/bench-output.js';

/** The stored columns of a result's samples. */
export interface SampleColumns {
  samplesUs: string;
  rounds: string;
  smClockMhz: string | null;
}

export interface ResultSamples {
  /** Every timing sample, µs, in the order taken. */
  samples: number[];
  /** The round of each sample. */
  rounds: number[];
  /** The SM clock the kernel measured during each sample, MHz (null where it read none); null when not measured (cpu). */
  smClockMhz: Array<number | null> | null;
}

/** The columns of one of the binary's results. */
export function sampleColumns(r: Pick<VariantResult, 'samples_us' | 'rounds' | 'sm_clock_mhz'>): SampleColumns {
  return {
    samplesUs: JSON.stringify(r.samples_us),
    rounds: JSON.stringify(r.rounds),
    smClockMhz: r.sm_clock_mhz ? JSON.stringify(r.sm_clock_mhz) : null,
  };
}

/** A stored result's samples, rounds and per-sample clocks; throws, naming the result, on a column that is not such a list. */
export function readSamples(row: SampleColumns & { id: string }): ResultSamples {
  return {
    samples: list(row, 'samplesUs', false),
    rounds: list(row, 'rounds', false),
    smClockMhz: row.smClockMhz === null ? null : list(row, 'smClockMhz', true),
  };
}

function list(row: SampleColumns & { id: string }, column: keyof SampleColumns, nulls: false): number[];
function list(row: SampleColumns & { id: string }, column: keyof SampleColumns, nulls: true): Array<number | null>;
function list(row: SampleColumns & { id: string }, column: keyof SampleColumns, nulls: boolean): Array<number | null> {
  let v: unknown;
  try {
    v = JSON.parse(row[column] ?? 'null');
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' || (nulls && x === null))) {
    throw new Error(`result ${row.id}: Result.${column} is not a JSON list of numbers${nulls ? ' (or nulls)' : ''}`);
  }
  return v as Array<number | null>;
}
