/**
 * The collector's write: one outcome → its Run row, a Result row per variant,
 * the Worker and Build rows. Idempotent, keyed by run id: the first outcome of
 * a run wins; a second delivery of the same run (a retried hand-off, a
 * re-run after a lost acknowledgement) changes nothing.
 */
import type { ParsedOutcome } from '../schema/job.js';
import { canonicalJson } from '../util/hash.js';
import type { Db } from './client.js';

export type RecordResult = 'recorded' | 'duplicate';

/** Output kept for diagnosis is capped. */
export const TAIL_BYTES = 16 * 1024;

export async function recordOutcome(db: Db, o: ParsedOutcome): Promise<RecordResult> {
  return db.$transaction(async (tx) => {
    const existing = await tx.run.findUnique({ where: { id: o.runId }, select: { status: true } });
    if (existing && existing.status !== 'queued') return 'duplicate';
    if (!existing) {
      // No plan row (the plan went to another database, or was lost): record the run anyway.
      await tx.sweep.upsert({
        where: { id: o.sweepId },
        create: { id: o.sweepId, name: '(unplanned)', pool: o.pool, spec: '{}', points: 0, runs: 0 },
        update: {},
      });
    }
    const now = new Date(o.finishedAt);
    if (o.worker) {
      const w = o.worker;
      await tx.worker.upsert({
        where: { id: w.id },
        create: { id: w.id, host: w.host, pool: w.pool, backend: w.backend, cpu: w.cpu, gpu: w.gpu, driver: w.driver, compiler: w.compiler, info: canonicalJson(w), lastSeen: now },
        update: { lastSeen: now, info: canonicalJson(w), driver: w.driver, compiler: w.compiler },
      });
    }
    if (o.build) {
      const b = o.build;
      await tx.build.upsert({ where: { key: b.key }, create: { ...b }, update: {} });
    }
    const runData = {
      status: o.status,
      reason: o.reason,
      attempts: o.attempts,
      workerId: o.worker?.id ?? null,
      buildKey: o.build?.key ?? null,
      flags: o.flags.join(','),
      env: o.env ? canonicalJson(o.env) : null,
      telemetry: o.telemetry === null ? null : JSON.stringify(o.telemetry),
      stdoutTail: cap(o.stdoutTail),
      stderrTail: cap(o.stderrTail),
      wallMs: o.wallMs,
      startedAt: o.startedAt === null ? null : new Date(o.startedAt),
      finishedAt: now,
    };
    await tx.run.upsert({
      where: { id: o.runId },
      create: {
        id: o.runId,
        sweepId: o.sweepId,
        pointHash: o.job.groupHash,
        rep: o.job.rep,
        pool: o.pool,
        params: canonicalJson(o.job.points),
        ...runData,
      },
      update: runData,
    });
    if (o.output) {
      const hashByVariant = new Map(o.job.points.map((p) => [p.point.variant, p.hash]));
      for (const r of o.output.results) {
        if (!r.stats) continue; // not timed (its check failed): nothing to store as a result
        const id = `${o.runId}/${r.variant}`;
        await tx.result.upsert({
          where: { id },
          update: {},
          create: {
            id,
            runId: o.runId,
            variant: r.variant,
            pointHash: hashByVariant.get(r.variant) ?? o.job.groupHash,
            n: r.stats.n,
            median: r.stats.median,
            p10: r.stats.p10,
            p90: r.stats.p90,
            mean: r.stats.mean,
            min: r.stats.min,
            max: r.stats.max,
            stdev: r.stats.stdev,
            bandwidthGbps: r.bandwidth_gbps,
            bytesPerIter: o.output.bytes_per_iter,
            checkPass: r.check.pass,
            relErr: r.check.rel_err ?? -1,
            samplesUs: JSON.stringify(r.samples_us),
            rounds: JSON.stringify(r.rounds),
            smClockMhz: r.sm_clock_mhz ? JSON.stringify(r.sm_clock_mhz) : null,
            waits: r.waits === undefined || r.waits === null ? null : JSON.stringify(r.waits),
            sourceHash: o.output.build.source_hash,
            gitCommit: o.output.build.git_commit ?? null,
          },
        });
      }
    }
    return 'recorded';
  });
}

function cap(text: string | null): string | null {
  if (text === null) return null;
  return text.length > TAIL_BYTES ? '…' + text.slice(-TAIL_BYTES) : text;
}
