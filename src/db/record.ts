/**
 * The collector's write: outcomes → their Run rows, a Result row per timed
 * variant, the Worker and Build rows. Idempotent, keyed by run id: the first
 * outcome of a run wins; a second delivery of the same run (a retried
 * hand-off, a re-run after a lost acknowledgement) changes nothing.
 *
 * A batch of outcomes is written in one transaction of a few multi-row
 * statements (through Prisma's raw queries; the same SQL serves SQLite and
 * Postgres). Measured with `npm run bench:farm`: one Prisma upsert chain per
 * outcome ingested 209 results/s into SQLite and 126/s into Postgres; see the
 * README's performance section for this version's figures.
 *
 * Every statement writes, the first one included: a SQLite transaction that
 * read first could not wait for the write lock (SQLITE_BUSY at once), and the
 * "first outcome wins" rule is a condition of the upsert itself
 * (`DO UPDATE … WHERE status = 'queued'`), whose RETURNING tells which runs
 * this batch recorded.
 *
 * Every string bound into a statement is made storable first (db/text.ts:
 * NUL and lone surrogates), and each transaction checks, before it commits,
 * that a SQLite file is still the one opened (db/client.ts assertSameDatabase).
 *
 * The one exception to "first outcome wins": a `done` outcome replaces `cancelled`
 * (sweep cancel marks runs at once; a run that finished meanwhile keeps its result).
 */
import type { ParsedOutcome } from '../schema/job.js';
import { canonicalJson } from '../util/hash.js';
import type { Build as BuildModel, Result as ResultModel, Run as RunModel, Sweep as SweepModel, Worker as WorkerModel } from '../../generated/prisma/sqlite/client/client.js';
import { assertSameDatabase, insertRecords, providerOf, type Db } from './client.js';
import { recordBuildSources, UNPLANNED } from './plan.js';
import { storableValue } from './text.js';
import { tuneText } from '../sweep/tune.js';
import type { VariantResult } from '../schema/bench-output.js';
import { sampleColumns } from './samples.js';

export type RecordResult = 'recorded' | 'duplicate';

/** Output kept for diagnosis is capped. */
export const TAIL_BYTES = 16 * 1024;

/** Rows per multi-row statement: well inside SQLite's and Postgres's parameter limits. */
const ROWS_PER_STATEMENT = 50;

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/**
 * The Run columns an outcome writes, as they are before any outcome: `sweep retry` writes these back
 * (queue/retry.ts), and a run recorded here fills the same columns (OUTCOME_COLUMNS).
 */
export const NO_OUTCOME = {
  status: 'queued',
  reason: null,
  attempts: 0,
  workerId: null,
  buildKey: null,
  flags: '',
  env: null,
  telemetry: null,
  stdoutTail: null,
  stderrTail: null,
  wallMs: null,
  startedAt: null,
  finishedAt: null,
} as const;
const OUTCOME_COLUMNS = Object.keys(NO_OUTCOME) as ReadonlyArray<keyof typeof NO_OUTCOME>;
type Value = string | number | boolean | Date | null;

/*
 * The rows written here, each an object of the table's model (generated from prisma/models.prisma): every
 * value is written beside its column's name, the column list is read from the object (db/client.ts
 * insertRecords), and the compiler holds each row to the model's columns and types. Omitted: the
 * columns left to their defaults.
 */
type SweepRow = Pick<SweepModel, 'id' | 'name' | 'pool' | 'spec' | 'points' | 'runs'>;
type WorkerRow = Omit<WorkerModel, 'firstSeen'>;
type BuildRow = Omit<BuildModel, 'createdAt'>;
type OutcomeRow = Pick<RunModel, keyof typeof NO_OUTCOME>;
type RunRow = Pick<RunModel, 'id' | 'sweepId' | 'groupHash' | 'rep' | 'pool' | 'params'> & OutcomeRow;
type ResultRow = ResultModel;

/** The Sweep row of a sweep whose plan this database lacks. */
function unplannedSweep(id: string, pool: string): SweepRow {
  return { id, name: UNPLANNED, pool, spec: '{}', points: 0, runs: 0 };
}

export async function recordOutcome(db: Db, o: ParsedOutcome): Promise<RecordResult> {
  const [r] = await recordOutcomes(db, [o]);
  return r!;
}

/** Writes a batch in one transaction; returns, per outcome in order, whether it was recorded or a duplicate. */
export async function recordOutcomes(db: Db, outcomes: readonly ParsedOutcome[]): Promise<RecordResult[]> {
  if (outcomes.length === 0) return [];
  // Within a batch the first delivery of a run wins too.
  const first = new Map<string, ParsedOutcome>();
  for (const o of outcomes) if (!first.has(o.runId)) first.set(o.runId, o);
  const batch = [...first.values()];
  const provider = providerOf(db);
  const insert = async (tx: Tx, table: string, rows: ReadonlyArray<Readonly<Record<string, Value>>>, tail: string, returning = false): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
      const statement = insertRecords(provider, table, rows.slice(i, i + ROWS_PER_STATEMENT));
      const sql = `${statement.sql} ${tail}`;
      const values = statement.values.map(storableValue);
      if (returning) ids.push(...(await tx.$queryRawUnsafe<Array<{ id: string }>>(sql, ...values)).map((r) => r.id));
      else await tx.$executeRawUnsafe(sql, ...values);
    }
    return ids;
  };

  const won = await db.$transaction(
    async (tx) => {
      // Sweeps with no plan row (the plan went to another database, or was lost): record the runs anyway.
      const sweeps = new Map(batch.map((o) => [o.sweepId, o.pool]));
      await insert(tx, 'Sweep', [...sweeps].map(([id, pool]) => unplannedSweep(id, pool)), 'ON CONFLICT ("id") DO NOTHING');

      const workers = new Map(batch.filter((o) => o.worker).map((o) => [o.worker!.id, o]));
      await insert(
        tx,
        'Worker',
        [...workers.values()].map((o): WorkerRow => {
          const w = o.worker!;
          return { id: w.id, host: w.host, pool: w.pool, backend: w.backend, cpu: w.cpu, gpu: w.gpu, driver: w.driver, compiler: w.compiler, info: canonicalJson(w), lastSeen: new Date(o.finishedAt) };
        }),
        'ON CONFLICT ("id") DO UPDATE SET "lastSeen" = excluded."lastSeen", "info" = excluded."info", "driver" = excluded."driver", "compiler" = excluded."compiler"',
      );

      const builds = new Map(batch.flatMap((o) => o.builds.map((b) => [b.info.key, b.info] as const)));
      await insert(
        tx,
        'Build',
        [...builds.values()].map((b): BuildRow => ({ key: b.key, backend: b.backend, sourceHash: b.sourceHash, gitCommit: b.gitCommit, compiler: b.compiler, flags: b.flags, arch: b.arch })),
        'ON CONFLICT ("key") DO NOTHING',
      );
      // A worker that built its own checkout (sweep source: worker) says what it was.
      await recordBuildSources(tx, provider, batch.flatMap((o) => o.builds.flatMap((b) => (b.source ? [b.source] : []))));

      const recorded = await insert(
        tx,
        'Run',
        batch.map((o): RunRow => ({
          id: o.runId,
          sweepId: o.sweepId,
          groupHash: o.job.groupHash,
          rep: o.job.rep,
          pool: o.pool,
          params: canonicalJson(o.job.points),
          status: o.status,
          reason: o.reason,
          attempts: o.attempts,
          workerId: o.worker?.id ?? null,
          buildKey: o.builds[0]?.info.key ?? null,
          flags: o.flags.join(','),
          env: o.env ? canonicalJson(o.env) : null,
          telemetry: o.telemetry === null ? null : JSON.stringify(o.telemetry),
          stdoutTail: cap(o.stdoutTail),
          stderrTail: cap(o.stderrTail),
          wallMs: o.wallMs,
          startedAt: o.startedAt === null ? null : new Date(o.startedAt),
          finishedAt: new Date(o.finishedAt),
        })),
        'ON CONFLICT ("id") DO UPDATE SET ' +
          OUTCOME_COLUMNS.map((c) => `"${c}" = excluded."${c}"`).join(', ') +
          // The first outcome wins, with one exception: a result produced before a cancel took effect
          // replaces the `cancelled` that sweep cancel wrote meanwhile (a result is never dropped).
          ` WHERE "Run"."status" = 'queued' OR ("Run"."status" = 'cancelled' AND excluded."status" = 'done') RETURNING "id"`,
        true,
      );
      const wonIds = new Set(recorded);

      const results: ResultRow[] = [];
      for (const o of batch) {
        if (!wonIds.has(o.runId)) continue;
        const hashOf = new Map(o.job.points.map((p) => [`${p.build}\0${p.point.variant}\0${tuneText(p.point.tune)}`, p.hash]));
        const several = o.job.builds.length > 1;
        for (const { name, info, output } of o.builds) {
          for (const r of output.results) {
            if (!r.stats) continue; // not timed (its check failed): nothing to store as a result
            // The setting the sweep asked for is what the binary took from --tune (source "flag").
            const tune = requestedTune(r.tunables);
            const e = r.energy ?? null;
            const updates = e?.counter_update_ms as { median?: unknown } | undefined;
            results.push({
              id: (several ? `${o.runId}/${name}/${r.variant}` : `${o.runId}/${r.variant}`) + (tune ? `@${tune.replace(/ /g, ',')}` : ''),
              runId: o.runId,
              build: name,
              buildKey: info.key,
              variant: r.variant,
              pointHash: hashOf.get(`${name}\0${r.variant}\0${tune}`) ?? o.job.groupHash,
              // The binary's statistics of the samples, for results list (prisma/models.prisma): the samples are the truth.
              n: r.stats.n,
              median: r.stats.median,
              p10: r.stats.p10,
              p90: r.stats.p90,
              bandwidthGbps: r.bandwidth_gbps,
              bytesPerIter: output.bytes_per_iter,
              checkPass: r.check.pass,
              relErr: r.check.rel_err, // null: no error measured
              ...sampleColumns(r),
              waits: r.waits === undefined || r.waits === null ? null : JSON.stringify(r.waits),
              sourceHash: output.build.source_hash,
              gitCommit: output.build.git_commit ?? null,
              tune,
              tunables: r.tunables ? canonicalJson(r.tunables) : null,
              device: output.device.name,
              joulesPerForward: e?.joules_per_forward ?? null,
              meanPowerW: e?.mean_power_w ?? null,
              energyStepMj: typeof e?.counter_step_mj_min === 'number' ? e.counter_step_mj_min : null,
              energyUpdateMs: typeof updates?.median === 'number' ? updates.median : null,
              energy: e === null ? null : JSON.stringify(e),
            });
          }
        }
      }
      await insert(tx, 'Result', results, 'ON CONFLICT ("id") DO NOTHING');
      assertSameDatabase(db);
      return wonIds;
    },
    { timeout: 60_000, maxWait: 60_000 },
  );
  // The first delivery of each run in this batch is the one written; every other is a duplicate.
  return outcomes.map((o) => (first.get(o.runId) === o && won.has(o.runId) ? 'recorded' : 'duplicate'));
}

/** The tunable values the binary took from --tune (the sweep's setting), as Result.tune; '' when none. */
export function requestedTune(tunables: VariantResult['tunables']): string {
  if (!tunables) return '';
  return tuneText(Object.fromEntries(Object.entries(tunables).filter(([, t]) => t.source === 'flag').map(([k, t]) => [k, t.value])));
}

function cap(text: string | null): string | null {
  if (text === null) return null;
  return text.length > TAIL_BYTES ? '…' + text.slice(-TAIL_BYTES) : text;
}

/** A run whose message could not be read (it failed its schema): what is known of it, and why. */
export interface UnreadableRun {
  runId: string;
  sweepId: string;
  pool: string;
  status: 'invalid' | 'collector-error';
  reason: string;
  /** The message as it was, capped: kept for diagnosis. */
  raw: string;
}

/**
 * Records a run from a message that failed its schema, so that nothing waits on it and the reason is kept:
 * a planned (queued) run gets the status and reason; a run with no row is recorded under its sweep
 * (`(unplanned)` if the sweep has none). A run that already has an outcome keeps it.
 */
export async function recordUnreadable(db: Db, u: UnreadableRun): Promise<RecordResult> {
  const provider = providerOf(db);
  const now = new Date();
  const recorded = await db.$transaction(async (tx) => {
    const sweep = insertRecords<Value>(provider, 'Sweep', [unplannedSweep(u.sweepId, u.pool)]);
    await tx.$executeRawUnsafe(`${sweep.sql} ON CONFLICT ("id") DO NOTHING`, ...sweep.values.map(storableValue));
    // What is known of the run; its other columns keep their defaults (those of NO_OUTCOME among them).
    const row: Pick<RunRow, 'id' | 'sweepId' | 'groupHash' | 'rep' | 'pool' | 'params' | 'status' | 'reason' | 'stderrTail' | 'finishedAt'> = {
      id: u.runId,
      sweepId: u.sweepId,
      groupHash: '',
      rep: 0,
      pool: u.pool,
      params: '[]',
      status: u.status,
      reason: u.reason,
      stderrTail: cap(u.raw),
      finishedAt: now,
    };
    const run = insertRecords<Value>(provider, 'Run', [row]);
    const rows = await tx.$queryRawUnsafe<Array<{ id: string }>>(
      `${run.sql} ` +
        `ON CONFLICT ("id") DO UPDATE SET "status" = excluded."status", "reason" = excluded."reason", "stderrTail" = excluded."stderrTail", "finishedAt" = excluded."finishedAt" ` +
        `WHERE "Run"."status" = 'queued' RETURNING "id"`,
      ...run.values.map(storableValue),
    );
    assertSameDatabase(db);
    return rows.length > 0;
  });
  return recorded ? 'recorded' : 'duplicate';
}
