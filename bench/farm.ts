/**
 * `npm run bench:farm`: what the farm itself costs, measured with the CPU
 * backend on the smallest shape so that the binary's own time is small.
 * A benchmark, not a test: it prints a table, writes bench-results/farm-<date>.json,
 * and the figures go into the README's performance section.
 *
 * Needs Redis (REDIS_URL or redis://127.0.0.1:6379) and Postgres for the
 * Postgres ingest figure (BENCH_PG_ADMIN_URL, default postgres://postgres@127.0.0.1:5432/postgres).
 * Every Redis key it writes carries its own prefix and is deleted afterwards.
 *
 * Sections (each can be chosen with BENCH_ONLY=submit,overhead,ingest,cache,memory,throughput):
 *   submit      validation + expansion + database plan + enqueue of a 10,000-point sweep
 *   overhead    per job: picked (BullMQ processedOn) → result committed, minus the binary's wall time
 *   ingest      collector write rate, 5,000 queued results, into SQLite and into Postgres
 *   cache       ensureBinary() on a warm cache
 *   memory      RSS of a worker process and a collector process over 5,000 jobs
 *   throughput  jobs/s with 1, 4 and 16 worker processes
 */
import { randomUUID } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';
import { Collector } from '../src/collector/collector.js';
import { cacheDir, csrcDir, projectRoot, queuePrefix } from '../src/config.js';
import { openDb, type Db } from '../src/db/client.js';
import { createScratchPostgres } from '../src/db/scratch.js';
import { RESULTS_QUEUE, runQueueName } from '../src/queue/names.js';
import { RESULT_JOB_OPTIONS } from '../src/queue/options.js';
import { submitPlan } from '../src/queue/submit.js';
import type { Outcome } from '../src/schema/job.js';
import { quantile } from '../src/stats/index.js';
import { planSweep } from '../src/sweep/expand.js';
import { parseSweepText } from '../src/sweep/load.js';
import { ensureBinary } from '../worker/build.js';
import { FarmWorker } from '../worker/worker.js';
import { silentLog } from '../src/util/log.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const PG_ADMIN = process.env['BENCH_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ONLY = new Set((process.env['BENCH_ONLY'] ?? 'submit,overhead,ingest,cache,memory,throughput').split(','));
const CLI = join(projectRoot, 'dist', 'src', 'cli.js');
const scratch = mkdtempSync(join(tmpdir(), 'moefarm-bench-'));
const prefixes: string[] = [];
const figures: Record<string, unknown> = {};

function newPrefix(): string {
  const p = `bench-${randomUUID().slice(0, 8)}`;
  prefixes.push(p);
  process.env['MOEFARM_PREFIX'] = p;
  return p;
}

function redis(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** Jobs of the smallest real work (tiny shape, one token, one timed iteration): one point repeated. */
function tinyRuns(name: string, pool: string, jobs: number): string {
  return [`name: ${name}`, `pool: ${pool}`, `repeat: ${jobs}`, 'timeout_s: 60', 'matrix:', '  variant: reference', '  model: tiny', '  tokens: 1', '  warmup: 0', '  iters: 1', '  rotate: 1'].join('\n');
}

/** A sweep with many distinct points (tiny shape; token counts x warm-up counts), for the submit figure. */
function tinySweep(name: string, pool: string, points: number): string {
  // tokens x warmup gives as many distinct points as asked (each point its own hash and job).
  const tokens = Math.min(points, 100);
  const warmups = Math.ceil(points / tokens);
  return [
    `name: ${name}`,
    `pool: ${pool}`,
    'timeout_s: 60',
    'matrix:',
    '  variant: reference',
    '  model: tiny',
    `  tokens: [${Array.from({ length: tokens }, (_, i) => i + 1).join(', ')}]`,
    `  warmup: [${Array.from({ length: warmups }, (_, i) => i).join(', ')}]`,
    '  iters: 1',
    '  rotate: 1',
  ].join('\n');
}

function freshPg(): Promise<{ url: string; drop: () => Promise<void> }> {
  return createScratchPostgres(PG_ADMIN, 'moefarm_bench');
}

async function benchSubmit(): Promise<void> {
  newPrefix();
  const db = await openDb({ url: `file:${join(scratch, 'submit.db')}` });
  const r = redis();
  const text = tinySweep('bench-submit', `submit-${randomUUID().slice(0, 6)}`, 10_000);
  const t0 = performance.now();
  const sweep = parseSweepText(text, 'bench-submit.yaml');
  const plan = planSweep(sweep, { allowLarge: true });
  const t1 = performance.now();
  const report = await submitPlan(db, r, plan, null);
  const t2 = performance.now();
  const again = await submitPlan(db, r, plan, null);
  const t3 = performance.now();
  if (report.enqueued !== 10_000 || again.enqueued !== 0) throw new Error(`submit: expected 10000 then 0 enqueued, got ${report.enqueued} then ${again.enqueued}`);
  figures['submit'] = {
    points: plan.points.length,
    validate_expand_ms: t1 - t0,
    plan_and_enqueue_ms: t2 - t1,
    total_ms: t2 - t0,
    resubmit_ms: t3 - t2,
    target_ms: 3000,
  };
  log(`submit: 10,000 points in ${(t2 - t0).toFixed(0)} ms (validate+expand ${(t1 - t0).toFixed(0)}, plan+enqueue ${(t2 - t1).toFixed(0)}); resubmit ${(t3 - t2).toFixed(0)} ms`);
  r.disconnect();
  await db.$disconnect();
}

/** Runs `jobs` tiny jobs through one in-process worker and collector; per-job overhead from timestamps. */
async function benchOverhead(jobs: number): Promise<void> {
  newPrefix();
  const pool = `ovh-${randomUUID().slice(0, 6)}`;
  const db = await openDb({ url: `file:${join(scratch, 'overhead.db')}` });
  const [r, wc, cc] = [redis(), redis(), redis()];
  const committed = new Map<string, number>();
  const collector = new Collector({ db, connection: cc, log: silentLog, onRecorded: (o) => committed.set(o.runId, Date.now()) });
  const worker = new FarmWorker({ connection: wc, pool, backend: 'cpu', gpu: null, arch: 'sm_90a', csrc: csrcDir(), cache: cacheDir(), log: silentLog });
  await worker.start();
  const plan = planSweep(parseSweepText(tinyRuns('bench-overhead', pool, jobs), 'o.yaml'), { allowLarge: true });
  await submitPlan(db, r, plan, null);
  while (committed.size < jobs) await sleep(50);
  const q = new Queue(runQueueName(pool), { connection: r, prefix: queuePrefix() });
  const overheads: number[] = [];
  const walls: number[] = [];
  for (const run of plan.runs) {
    const job = await q.getJob(run.id);
    const row = await db.run.findUniqueOrThrow({ where: { id: run.id }, select: { wallMs: true } });
    const picked = job?.processedOn;
    const done = committed.get(run.id);
    if (picked === undefined || done === undefined || row.wallMs === null) continue;
    overheads.push(done - picked - row.wallMs);
    walls.push(row.wallMs);
  }
  // The first job builds the binary (cold cache): leave it out, the target is for a warm cache.
  overheads.shift();
  walls.shift();
  figures['overhead'] = {
    jobs: overheads.length,
    median_ms: quantile(overheads, 0.5),
    p99_ms: quantile(overheads, 0.99),
    binary_wall_median_ms: quantile(walls, 0.5),
    target_median_ms: 30,
    target_p99_ms: 150,
  };
  log(`overhead: median ${quantile(overheads, 0.5).toFixed(1)} ms, p99 ${quantile(overheads, 0.99).toFixed(1)} ms (binary wall median ${quantile(walls, 0.5).toFixed(1)} ms)`);
  await q.close();
  await worker.close();
  await collector.close();
  for (const c of [r, wc, cc]) c.disconnect();
  await db.$disconnect();
}

/** A realistic outcome: one variant, 100 samples, identity and build attached. */
function syntheticOutcome(sweepId: string, i: number): Outcome {
  const point = { backend: 'cpu' as const, variant: 'reference', model: 'tiny', hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'bf16' as const, warmup: 0, iters: 100, rotate: null, cold_l2: false, clock: 'default' as const, power: 'default' as const };
  const samples = Array.from({ length: 100 }, (_, k) => 100 + ((i * 7 + k * 13) % 17));
  const runId = `${sweepId}-${String(i).padStart(16, '0')}-r0`;
  return {
    runId,
    sweepId,
    pool: 'ingest',
    job: { runId, sweepId, groupHash: String(i).padStart(16, '0'), rep: 0, seed: 1, timeoutS: 60, powerWaitS: 0, submittedAt: Date.now(), rounds: 1, builds: [{ name: 'default', source: { bundle: 'f'.repeat(64), commit: null }, flags: [] }], points: [{ hash: String(i).padStart(16, '0'), point, build: 'default' }] },
    status: 'done',
    reason: null,
    attempts: 1,
    worker: { id: 'bench/ingest/cpu', host: 'bench', pool: 'ingest', backend: 'cpu', cpu: 'cpu', gpu: null, gpuIndex: null, driver: null, compiler: 'g++', pid: 1 },
    builds: [{
      name: 'default',
      info: { key: 'b'.repeat(24), backend: 'cpu', sourceHash: 'f'.repeat(64), gitCommit: null, compiler: 'g++', flags: '-O3', arch: 'x64' },
      output: {
      schema: 'moefarm.bench/1',
      config: { backend: 'cpu', variants: ['reference'], hidden: 256, inter: 128, experts: 16, topk: 4, tokens: 1, dtype: 'bf16', warmup: 0, iters: 100 },
      device: { kind: 'cpu', name: 'bench' },
      build: { source_hash: 'f'.repeat(64), git_commit: null, compiler: 'g++', flags: '-O3', arch: 'x64' },
      bytes_per_iter: 1000,
      check: { pass: true },
      results: [
        {
          variant: 'reference',
          check: { pass: true, rel_err: 0.001, tol: 0.02 },
          samples_us: samples,
          rounds: samples.map(() => 0),
          sm_clock_mhz: null,
          stats: { n: 100, min: 100, p10: 101, median: 108, mean: 108, p90: 115, p99: 116, max: 116, stdev: 5 },
          bandwidth_gbps: 1,
        },
      ],
      },
    }],
    flags: [],
    env: null,
    telemetry: null,
    stdoutTail: null,
    stderrTail: null,
    wallMs: 10,
    startedAt: Date.now(),
    finishedAt: Date.now(),
  };
}

async function benchIngestInto(kind: 'sqlite' | 'postgres', n: number): Promise<number> {
  newPrefix();
  let url: string;
  let drop = async () => {};
  if (kind === 'sqlite') url = `file:${join(scratch, `ingest-${randomUUID().slice(0, 6)}.db`)}`;
  else ({ url, drop } = await freshPg());
  const db = await openDb({ url });
  const r = redis();
  const q = new Queue(RESULTS_QUEUE, { connection: r, prefix: queuePrefix() });
  const sweepId = `sbench${randomUUID().slice(0, 6)}`;
  for (let i = 0; i < n; i += 1000) {
    await q.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ name: 'outcome', data: syntheticOutcome(sweepId, i + k), opts: { ...RESULT_JOB_OPTIONS, jobId: `${sweepId}-${i + k}` } })));
  }
  const cc = redis();
  let count = 0;
  const t0 = performance.now();
  const collector = new Collector({ db, connection: cc, log: silentLog, onRecorded: () => count++ });
  while (count < n) await sleep(20);
  const seconds = (performance.now() - t0) / 1000;
  const rows = await db.result.count();
  if (rows !== n) throw new Error(`ingest ${kind}: expected ${n} result rows, found ${rows}`);
  await collector.close();
  await q.close();
  r.disconnect();
  cc.disconnect();
  await db.$disconnect();
  await drop();
  log(`ingest ${kind}: ${n} results in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(0)}/s`);
  return n / seconds;
}

async function benchIngest(): Promise<void> {
  const n = Number(process.env['BENCH_INGEST_N'] ?? 5000);
  figures['ingest'] = {
    results: n,
    sqlite_per_s: await benchIngestInto('sqlite', n),
    postgres_per_s: await benchIngestInto('postgres', n),
    target_sqlite_per_s: 1000,
    target_postgres_per_s: 2000,
  };
}

async function benchCache(): Promise<void> {
  const req = { csrc: csrcDir(), cache: cacheDir(), backend: 'cpu' as const, arch: 'sm_90a' };
  await ensureBinary(req); // warm
  const times: number[] = [];
  for (let i = 0; i < 100; i++) {
    const b = await ensureBinary(req);
    if (!b.cached) throw new Error('cache: a warm cache rebuilt');
    times.push(b.ms);
  }
  figures['cache'] = { lookups: times.length, median_ms: quantile(times, 0.5), p99_ms: quantile(times, 0.99) };
  log(`cache hit: median ${quantile(times, 0.5).toFixed(2)} ms, p99 ${quantile(times, 0.99).toFixed(2)} ms`);
}

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

function spawnCli(args: string[], env: Record<string, string>): ResultPromise {
  return execa(process.execPath, [CLI, ...args], { reject: false, env: { REDIS_URL, MOEFARM_PREFIX: process.env['MOEFARM_PREFIX']!, MOEFARM_CACHE: cacheDir(), MOEFARM_CSRC: csrcDir(), ...env } });
}

async function waitRecorded(db: Db, sweepId: string, total: number, onProgress?: (done: number) => void): Promise<void> {
  for (;;) {
    const done = await db.run.count({ where: { sweepId, status: { not: 'queued' } } });
    onProgress?.(done);
    if (done >= total) return;
    await sleep(250);
  }
}

async function benchMemory(): Promise<void> {
  const jobs = Number(process.env['BENCH_MEMORY_JOBS'] ?? 5000);
  newPrefix();
  const pool = `mem-${randomUUID().slice(0, 6)}`;
  const dbUrl = `file:${join(scratch, 'memory.db')}`;
  const db = await openDb({ url: dbUrl });
  const r = redis();
  const plan = planSweep(parseSweepText(tinyRuns('bench-memory', pool, jobs), 'm.yaml'), { allowLarge: true });
  await submitPlan(db, r, plan, null);
  const worker = spawnCli(['worker', '--pool', pool], {});
  const collector = spawnCli(['serve'], { DATABASE_URL: dbUrl });
  const samples: Array<{ done: number; worker_kb: number; collector_kb: number }> = [];
  let nextMark = 250;
  const t0 = performance.now();
  await waitRecorded(db, plan.sweepId, jobs, (done) => {
    if (done >= nextMark) {
      samples.push({ done, worker_kb: rssKb(worker.pid!), collector_kb: rssKb(collector.pid!) });
      nextMark += 250;
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  samples.push({ done: jobs, worker_kb: rssKb(worker.pid!), collector_kb: rssKb(collector.pid!) });
  worker.kill('SIGTERM');
  collector.kill('SIGTERM');
  await Promise.all([worker, collector]);
  const base = samples[0]!;
  const last = samples.at(-1)!;
  figures['memory'] = {
    jobs,
    seconds,
    worker_rss_mb_after_250: base.worker_kb / 1024,
    worker_rss_mb_after_all: last.worker_kb / 1024,
    worker_growth_pct: ((last.worker_kb - base.worker_kb) / base.worker_kb) * 100,
    collector_rss_mb_after_250: base.collector_kb / 1024,
    collector_rss_mb_after_all: last.collector_kb / 1024,
    collector_growth_pct: ((last.collector_kb - base.collector_kb) / base.collector_kb) * 100,
    target_growth_pct: 20,
    samples,
  };
  log(`memory: worker ${(base.worker_kb / 1024).toFixed(0)} → ${(last.worker_kb / 1024).toFixed(0)} MB, collector ${(base.collector_kb / 1024).toFixed(0)} → ${(last.collector_kb / 1024).toFixed(0)} MB over ${jobs} jobs (${seconds.toFixed(0)} s)`);
  r.disconnect();
  await db.$disconnect();
}

async function benchThroughput(): Promise<void> {
  const jobs = Number(process.env['BENCH_THROUGHPUT_JOBS'] ?? 400);
  const out: Record<string, number> = {};
  for (const n of [1, 4, 16]) {
    newPrefix();
    const pool = `tp-${n}-${randomUUID().slice(0, 6)}`;
    const dbUrl = `file:${join(scratch, `tp-${n}.db`)}`;
    const db = await openDb({ url: dbUrl });
    const r = redis();
    const collector = spawnCli(['serve'], { DATABASE_URL: dbUrl });
    const workers = Array.from({ length: n }, () => spawnCli(['worker', '--pool', pool], {}));
    await sleep(1500); // let the processes start before the clock does
    const plan = planSweep(parseSweepText(tinyRuns(`bench-tp-${n}`, pool, jobs), 't.yaml'), { allowLarge: true });
    const t0 = performance.now();
    await submitPlan(db, r, plan, null);
    await waitRecorded(db, plan.sweepId, jobs);
    const seconds = (performance.now() - t0) / 1000;
    out[`workers_${n}_jobs_per_s`] = jobs / seconds;
    log(`throughput: ${n} worker(s): ${jobs} jobs in ${seconds.toFixed(1)} s = ${(jobs / seconds).toFixed(1)} jobs/s`);
    for (const w of workers) w.kill('SIGTERM');
    collector.kill('SIGTERM');
    await Promise.all([...workers, collector]);
    r.disconnect();
    await db.$disconnect();
  }
  figures['throughput'] = { jobs, ...out };
}

async function cleanupRedis(): Promise<void> {
  const r = redis();
  for (const p of prefixes) {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${p}:*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  }
  r.disconnect();
}

try {
  process.env['MOEFARM_CACHE'] ??= join(tmpdir(), 'moefarm-bench-cache');
  // Measure against a snapshot of the sources: an edit to csrc/ during the run must not cause rebuilds.
  const snapshot = join(scratch, 'csrc');
  cpSync(csrcDir(), snapshot, { recursive: true, filter: (src) => !src.endsWith('/build') });
  process.env['MOEFARM_CSRC'] = snapshot;
  mkdirSync(process.env['MOEFARM_CACHE'], { recursive: true });
  const started = new Date();
  if (ONLY.has('cache')) await benchCache();
  if (ONLY.has('submit')) await benchSubmit();
  if (ONLY.has('overhead')) await benchOverhead(Number(process.env['BENCH_OVERHEAD_JOBS'] ?? 300));
  if (ONLY.has('ingest')) await benchIngest();
  if (ONLY.has('throughput')) await benchThroughput();
  if (ONLY.has('memory')) await benchMemory();
  const report = {
    date: started.toISOString(),
    machine: { host: hostname(), cpu: cpus()[0]?.model ?? '?', cores: cpus().length, mem_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
    figures,
  };
  mkdirSync(join(projectRoot, 'bench-results'), { recursive: true });
  const file = join(projectRoot, 'bench-results', `farm-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2));
  process.stdout.write(renderSummary(report.figures) + `\nwritten: ${file}\n`);
} finally {
  await cleanupRedis();
  rmSync(scratch, { recursive: true, force: true });
}

function renderSummary(f: Record<string, unknown>): string {
  const g = f as Record<string, Record<string, number>>;
  const rows: Array<[string, string, string]> = [];
  const fmt = (v: number | undefined, d = 1) => (v === undefined ? '-' : v.toFixed(d));
  if (g['submit']) rows.push(['submit 10,000 points', `${fmt(g['submit']['total_ms'], 0)} ms`, '< 3000 ms']);
  if (g['overhead']) rows.push(['orchestration overhead per job, median', `${fmt(g['overhead']['median_ms'])} ms`, '< 30 ms'], ['orchestration overhead per job, p99', `${fmt(g['overhead']['p99_ms'])} ms`, '< 150 ms']);
  if (g['ingest']) rows.push(['ingest into SQLite', `${fmt(g['ingest']['sqlite_per_s'], 0)} /s`, '>= 1000 /s'], ['ingest into Postgres', `${fmt(g['ingest']['postgres_per_s'], 0)} /s`, '>= 2000 /s']);
  if (g['cache']) rows.push(['build-cache hit, median', `${fmt(g['cache']['median_ms'], 2)} ms`, '']);
  if (g['memory'])
    rows.push(
      ['worker RSS growth over the jobs', `${fmt(g['memory']['worker_growth_pct'])} % (${fmt(g['memory']['worker_rss_mb_after_all'], 0)} MB)`, '< 20 %'],
      ['collector RSS growth', `${fmt(g['memory']['collector_growth_pct'])} % (${fmt(g['memory']['collector_rss_mb_after_all'], 0)} MB)`, ''],
    );
  if (g['throughput']) for (const n of [1, 4, 16]) rows.push([`throughput, ${n} worker(s)`, `${fmt(g['throughput'][`workers_${n}_jobs_per_s`])} jobs/s`, '']);
  const w = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length))];
  return rows.map((r) => `${r[0].padEnd(w[0]!)}  ${r[1].padStart(w[1]!)}  ${r[2]}`).join('\n');
}
