/**
 * `npm run bench:http`: does `moefarm serve --http` stay responsive while it
 * renders reports? A benchmark, not a test; the figures go into the README.
 *
 * A real sweep (CPU backend, `tiny`, 2 variants x 8 token counts x 5
 * repetitions: 80 runs) is run by an in-process worker and collector into a
 * SQLite file; then `node CLI serve --http 0` is started on that file (CLI:
 * BENCH_CLI, default this checkout's dist/src/cli.js, so an older build can be
 * measured the same way) and loaded with BENCH_REQUESTS report requests
 * (default 1,000) at BENCH_CONCURRENCY (default 200) over keep-alive
 * connections, while /healthz is asked every 50 ms on a connection of its own.
 * Then the same with the database changing under the load (an outcome written
 * every 100 ms from another process), so no report is served twice from one
 * state of it.
 *
 * Needs Redis (REDIS_URL or redis://127.0.0.1:6379); every key it writes
 * carries its own prefix and is deleted afterwards.
 */
import { silentLog } from '../src/util/log.js';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { Collector } from '../src/collector/collector.js';
import { cacheDir, csrcDir, projectRoot } from '../src/config.js';
import { openDb } from '../src/db/client.js';
import { recordOutcome } from '../src/db/record.js';
import { submitPlan } from '../src/queue/submit.js';
import { toJob } from '../src/queue/job.js';
import { nothingRan } from '../src/schema/job.js';
import { quantile } from '../src/stats/index.js';
import { planSweep } from '../src/sweep/expand.js';
import { parseSweepText } from '../src/sweep/load.js';
import { FarmWorker } from '../worker/worker.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const CLI = process.env['BENCH_CLI'] ?? join(projectRoot, 'dist', 'src', 'cli.js');
const REQUESTS = Number(process.env['BENCH_REQUESTS'] ?? 1000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 200);
const scratch = mkdtempSync(join(tmpdir(), 'moefarm-bench-http-'));
const prefix = `bench-http-${randomUUID().slice(0, 8)}`;
process.env['MOEFARM_PREFIX'] = prefix;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function get(agent: Agent, url: string): Promise<{ status: number; ms: number; bytes: number }> {
  const t0 = performance.now();
  return new Promise((resolveGet, reject) => {
    const req = request(url, { agent }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, ms: performance.now() - t0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function populate(dbUrl: string): Promise<{ sweepId: string; plan: ReturnType<typeof planSweep> }> {
  const db = await openDb({ url: dbUrl });
  const conns = [0, 1, 2].map(() => new Redis(REDIS_URL, { maxRetriesPerRequest: null }));
  const [r, wc, cc] = conns as [Redis, Redis, Redis];
  const plan = planSweep(
    parseSweepText(
      ['name: bench-http', `pool: ${prefix}`, 'repeat: 5', 'timeout_s: 60', 'matrix:', '  variant: [reference, fused]', '  model: tiny', '  tokens: [1, 2, 3, 4, 5, 6, 7, 8]', '  warmup: 1', '  iters: 20', ''].join('\n'),
      'bench-http.yaml',
    ),
  );
  const collector = new Collector({ db, connection: cc });
  const worker = new FarmWorker({ connection: wc, pool: prefix, backend: 'cpu', gpu: null, arch: 'sm_90a', csrc: csrcDir(), cache: cacheDir(), log: silentLog });
  await worker.start();
  await submitPlan(db, r, plan, null);
  while ((await db.run.count({ where: { sweepId: plan.sweepId, status: 'queued' } })) > 0) await sleep(200);
  await worker.close();
  await collector.close();
  for (const c of conns) c.disconnect();
  await db.$disconnect();
  return { sweepId: plan.sweepId, plan };
}

/** /healthz every 50 ms on one keep-alive connection; prints each answer's latency (ms) on a line. */
const PROBE = `
import { Agent, request } from 'node:http';
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const url = process.argv[1];
for (;;) {
  const t0 = performance.now();
  await new Promise((done) => {
    const req = request(url, { agent }, (res) => { res.resume(); res.on('end', done); });
    req.on('error', done);
    req.end();
  });
  process.stdout.write((performance.now() - t0).toFixed(2) + '\\n');
  await new Promise((r) => setTimeout(r, 50));
}
`;

interface Phase {
  requests: number;
  concurrency: number;
  wallS: number;
  reportMs: { median: number; p99: number };
  statuses: Record<string, number>;
  healthz: { n: number; median: number; p99: number; max: number };
}

async function phase(base: string, path: string, during?: (stop: AbortSignal) => Promise<void>): Promise<Phase> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  // The probe is a process of its own: in this one, its replies would wait behind the 200 connections' data.
  const probe = execa(process.execPath, ['--input-type=module', '-e', PROBE, `${base}/healthz`], { reject: false, buffer: false });
  let probeOut = '';
  probe.stdout?.on('data', (d: Buffer) => (probeOut += d.toString()));
  while (!probeOut.includes('\n')) await sleep(20); // its first answer: it is running
  const stopDuring = new AbortController();
  const side = during ? during(stopDuring.signal) : Promise.resolve();
  const times: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        next++;
        const t1 = performance.now();
        const r = await get(agent, `${base}${path}`).catch((e: NodeJS.ErrnoException) => ({ status: e.code ?? 'error', ms: performance.now() - t1 }));
        times.push(r.ms);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  stopDuring.abort();
  probe.kill('SIGTERM');
  await probe;
  await side;
  agent.destroy();
  const health = probeOut.split('\n').filter(Boolean).map(Number);
  return {
    requests: REQUESTS,
    concurrency: CONCURRENCY,
    wallS,
    reportMs: { median: quantile(times, 0.5), p99: quantile(times, 0.99) },
    statuses,
    healthz: { n: health.length, median: quantile(health, 0.5), p99: quantile(health, 0.99), max: Math.max(...health) },
  };
}

async function main(): Promise<void> {
  const dbUrl = `file:${join(scratch, 'http.db')}`;
  log(`populating ${dbUrl} with a real 80-run sweep`);
  const { sweepId, plan } = await populate(dbUrl);
  log(`serving it with ${CLI}`);
  const serve = execa(process.execPath, [CLI, 'serve', '--http', '0'], { env: { REDIS_URL, MOEFARM_PREFIX: prefix, DATABASE_URL: dbUrl }, reject: false, all: true, buffer: false });
  let out = '';
  serve.all?.on('data', (d: Buffer) => (out += d.toString()));
  let base = '';
  for (let i = 0; i < 200 && !base; i++) {
    base = /http: reports at (http:\/\/[^\s]+?)\/?\s/.exec(out)?.[1] ?? '';
    await sleep(100);
  }
  if (!base) throw new Error(`serve did not start:\n${out}`);
  const path = `/sweeps/${sweepId}/report`;
  const first = await get(new Agent(), `${base}${path}`);
  log(`one report alone: ${first.ms.toFixed(0)} ms, ${first.bytes} bytes, status ${first.status}`);

  const steady = await phase(base, path);
  log(`steady: ${JSON.stringify(steady)}`);

  // The database changes under the load: an outcome of a new run of the sweep is written every 100 ms from
  // this (another) process, so reports cannot all be served from one state of it.
  let writes = 0;
  const changing = await phase(base, path, async (stop) => {
    const db = await openDb({ url: dbUrl, migrate: false });
    const extra = planSweep(parseSweepText(['name: bench-http-extra', `pool: ${prefix}`, 'repeat: 2000', 'matrix:', '  variant: reference', '  model: tiny', ''].join('\n'), 'x.yaml'), { allowLarge: true });
    while (!stop.aborted && writes < extra.runs.length) {
      await recordOutcome(db, {
        runId: `${plan.sweepId}-extra-r${writes}`,
        sweepId: plan.sweepId,
        pool: prefix,
        job: { ...toJob(extra, extra.runs[writes]!, Date.now()), sweepId: plan.sweepId },
        status: 'failed',
        reason: 'bench: a change under the load',
        attempts: 1,
        ...nothingRan(),
        finishedAt: Date.now(),
      });
      writes++;
      await sleep(100);
    }
    await db.$disconnect();
  });
  log(`changing (${writes} writes): ${JSON.stringify(changing)}`);
  serve.kill('SIGTERM');
  await serve;
  const result = { cli: CLI, cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, sweepRuns: plan.runs.length, reportBytes: first.bytes, oneReportMs: first.ms, steady, changing, writesDuringLoad: writes };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

try {
  await main();
} finally {
  const r = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [nextCursor, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length) await r.del(...keys);
  } while (cursor !== '0');
  r.disconnect();
  rmSync(scratch, { recursive: true, force: true });
}
