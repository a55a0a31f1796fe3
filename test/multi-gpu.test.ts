/**
 * Jobs that take several GPUs, against the nvidia-smi TEST DOUBLE
 * (test/doubles/nvidia-smi, a fake host of four GPUs joined by NVLink): CI
 * has no GPU. The workers, queues, collector, database and native binary are
 * the real ones; the binary is the CPU build, whose --gpus N splits the
 * experts over N simulated devices (csrc/src/cpu/variants.cpp forward_ep).
 *
 * - routing: a job of N GPUs goes only to a worker that owns N or more;
 * - refusal: a count no live worker of the pool owns ends as `unsatisfiable`,
 *   with its reason, once the sweep's gpus_wait_s is over, never before;
 * - the lock per GPU: a second worker asking for a GPU a live worker owns
 *   refuses to start, naming the owner; a dead owner's lock is taken over;
 * - the topology (topo -m) recorded with the run and part of its environment group;
 * - the binary's multi-device split equals the same layer on one device, with
 *   fp8 weights and shared experts too;
 * - sweep status and sweep resume find a run's job in its GPU count's queue.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queuePrefix } from '../src/config.js';
import type { Db } from '../src/db/client.js';
import { UsageError } from '../src/errors.js';
import { runQueueName } from '../src/queue/names.js';
import { resumeSweep } from '../src/queue/requeue.js';
import { planTemplate } from '../src/queue/job.js';
import { submitPlan } from '../src/queue/submit.js';
import { sweepProgress } from '../src/results/progress.js';
import { envKey, envLabel, runEnvironment } from '../src/results/environment.js';
import { TelemetrySchema } from '../src/schema/telemetry.js';
import { planSweep, type Plan } from '../src/sweep/expand.js';
import { parseSweepText } from '../src/sweep/load.js';
import { silentLog } from '../src/util/log.js';
import { GpuLock, GpuTakenError } from '../worker/gpu/lock.js';
import { parseTopoMatrix, topologyOf } from '../worker/gpu/topology.js';
import { FarmWorker, type WorkerOptions } from '../worker/worker.js';
import { FakeSmi, fakeHost } from './doubles/fake-gpu.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { runsSettled } from './helpers/farm.js';
import { gpuRig, startRigWorker, type GpuRig } from './helpers/gpu-rig.js';
import { CLI, ROOT, cli, sqliteUrl, waitFor } from './helpers/services.js';

// A farm on the double's GPUs per test (test/helpers/gpu-rig.ts); its parts by name.
let rig: GpuRig;
let smi: FakeSmi, dir: string, pool: string, db: Db, redis: Redis;
beforeEach(async () => {
  rig = await gpuRig('mgpu', { host: fakeHost(4, 'NV18'), reconcileEveryMs: 300 });
  ({ smi, dir, pool, db, redis } = rig);
});
afterEach(() => rig.close());

function startWorker(gpus: number[], extra: Partial<WorkerOptions> = {}): Promise<FarmWorker> {
  return startRigWorker(rig, { gpu: null, gpus, ...extra });
}

function sweep(extra: string, matrixExtra: string): Plan {
  return planSweep(
    parseSweepText(`name: mgpu\npool: ${pool}\ntimeout_s: 120\n${extra}\nmatrix:\n  variant: reference\n  model: tiny\n  tokens: 2\n  warmup: 1\n  iters: 3\n${matrixExtra}`, 'mgpu.yaml'),
    // The CPU backend stands in for the GPUs here (the nvidia-smi test double): let its points ask for clocks and power.
    { gpuSettingsOnCpu: true },
  );
}

async function runSweep(plan: Plan) {
  await submitPlan(db, redis, plan, null);
  await waitFor('the sweep to finish', () => runsSettled(db, plan.sweepId, plan.runs.length), 120_000);
  return db.run.findMany({ where: { sweepId: plan.sweepId }, orderBy: { id: 'asc' } });
}

const gpusOf = (params: string): number => (JSON.parse(params) as Array<{ point: { gpus?: number } }>)[0]!.point.gpus ?? 1;

describe('routing by GPU count', () => {
  it('gives a job of N GPUs only to a worker that owns N or more, on the first N of its GPUs, and records their links', async () => {
    const one = await startWorker([0]);
    const two = await startWorker([1, 2]);
    const plan = sweep('repeat: 2', '  gpus: [1, 2]\n');
    // Each GPU count has its own queue: the jobs of 2 GPUs wait where only the 2-GPU worker listens.
    expect(plan.runs.map((r) => r.points[0]!.point.gpus ?? 1).sort()).toEqual([1, 1, 2, 2]);
    const runs = await runSweep(plan);
    expect(runs.map((r) => r.status)).toEqual(['done', 'done', 'done', 'done']);
    const twoGpu = runs.filter((r) => gpusOf(r.params) === 2);
    expect(twoGpu).toHaveLength(2);
    for (const r of twoGpu) {
      expect(r.workerId).toMatch(/\/gpus1,2$/);
      const env = JSON.parse(r.env!) as Record<string, unknown>;
      expect(env).toMatchObject({ gpus: 2, gpuIndices: [1, 2], gpuUuids: ['GPU-fake-1', 'GPU-fake-2'], topology: { gpus: [1, 2], links: { '1-2': 'NV18' }, summary: 'NV18' } });
      // Telemetry per GPU: one sampler each, with -i of that GPU; the summary spans both.
      const t = TelemetrySchema.parse(JSON.parse(r.telemetry!));
      expect(t.per_gpu?.map((g) => g.index)).toEqual([1, 2]);
      expect(t.per_gpu?.every((g) => (g.summary?.samples ?? 0) > 0)).toBe(true);
      expect(t.summary?.samples).toBe(t.per_gpu!.reduce((n, g) => n + g.summary!.samples, 0));
    }
    // The one-GPU worker never took a 2-GPU job; a one-GPU run records no multi-GPU fields.
    for (const r of runs.filter((x) => gpusOf(x.params) === 1)) expect(JSON.parse(r.env!)).not.toHaveProperty('topology');
    const sampled = new Set(smi.calls().filter((a) => a.includes('-lms')).map((a) => a[1]));
    expect(sampled.has('1') && sampled.has('2')).toBe(true);
    expect(sampled.has('3')).toBe(false); // GPU 3 belongs to no worker
    // The 2-GPU results carry the binary's expert-parallel figures, with the layer's tokens (2 per GPU x 2).
    const res = await db.result.findMany({ where: { runId: { in: twoGpu.map((r) => r.id) } } });
    expect(res).toHaveLength(2);
    expect(res.every((x) => x.checkPass)).toBe(true);
    expect(two.gpuCount).toBe(2);
    expect(one.gpuCount).toBe(1);
    expect(two.topology).toMatchObject({ gpus: [1, 2], summary: 'NV18' });
  });

  it('moefarm worker --gpus all owns every GPU nvidia-smi lists, runs jobs of 1 and 2 GPUs, and with --once exits when its queues are empty', async () => {
    const plan = sweep('', '  gpus: [1, 2]\n');
    await submitPlan(db, redis, plan, null);
    const w = await execa(process.execPath, [CLI, 'worker', '--pool', pool, '--gpus', 'all', '--once'], {
      reject: false,
      timeout: 180_000,
      env: { ...smi.env(), REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: queuePrefix(), MOEFARM_CACHE: join(dir, 'cache-link') },
    });
    expect(w.exitCode, w.stderr).toBe(0);
    expect(w.stderr).toMatch(/\/gpus0,1,2,3: serving pool \S+ \(cpu, Fake H100 \(test double\); 4 GPUs 0,1,2,3 \(NV18 x6\), jobs of 1-4 GPUs\)/);
    expect(w.stderr).toMatch(/stopped after 2 job\(s\)/);
    await waitFor('both runs recorded', () => runsSettled(db, plan.sweepId, 2), 30_000);
    const runs = await db.run.findMany({ where: { sweepId: plan.sweepId } });
    expect(runs.map((r) => r.status)).toEqual(['done', 'done']);
    expect(runs.map((r) => JSON.parse(r.env!).gpuIndices ?? [JSON.parse(r.env!).gpuIndex]).sort()).toEqual([[0], [0, 1]]);
  });

  it('applies a clock lock to every GPU of the job, each with its own marker, and restores every one after', async () => {
    await startWorker([2, 3], { allowClockControl: true, allowPowerControl: true });
    const runs = await runSweep(sweep('', '  gpus: 2\n  clock: {lock: 1410}\n  power: {limit: 300}\n'));
    expect(runs.map((r) => [r.status, r.reason])).toEqual([['done', null]]);
    expect(smi.controlCalls()).toEqual(['-i 2 -lgc 1410,1410', '-i 2 -pl 300', '-i 3 -lgc 1410,1410', '-i 3 -pl 300', '-i 2 -rgc', '-i 2 -pl 700', '-i 3 -rgc', '-i 3 -pl 700']);
    expect(smi.read().gpus.map((g) => [g.locked, g.powerLimit])).toEqual([[null, 700], [null, 700], [null, 700], [null, 700]]);
    expect(JSON.parse(runs[0]!.env!)).toMatchObject({ requestedSmMhz: 1410, powerLimitW: 300, gpus: 2, gpuIndices: [2, 3] });
  });

  it('ends a GPU count no live worker owns as `unsatisfiable` after gpus_wait_s, with the reason, and never before', async () => {
    await startWorker([0, 1]);
    const t0 = Date.now();
    const plan = sweep('gpus_wait_s: 2', '  gpus: [2, 4]\n');
    await submitPlan(db, redis, plan, null);
    // The 4-GPU job waits out its wait in its own queue, untouched by the 2-GPU worker.
    await waitFor('the 2-GPU run to finish', async () => (await db.run.count({ where: { sweepId: plan.sweepId, status: 'done' } })) === 1, 120_000);
    const early = await db.run.findMany({ where: { sweepId: plan.sweepId } });
    const four = early.find((r) => gpusOf(r.params) === 4)!;
    const jobKey = `${queuePrefix()}:${runQueueName(pool, 4)}:${four.id}`;
    if (Date.now() - t0 < 1500) {
      // Still inside its wait: queued, in the queue of 4-GPU jobs.
      expect(four.status).toBe('queued');
      expect(await redis.exists(jobKey)).toBe(1);
    }
    await waitFor('the 4-GPU run to end', () => runsSettled(db, plan.sweepId, 2), 30_000);
    const ended = await db.run.findUniqueOrThrow({ where: { id: four.id } });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    expect(ended.status).toBe('unsatisfiable');
    expect(ended.reason).toMatch(new RegExp(`^the point asks for 4 GPUs, and no live worker of pool ${pool} owns that many \\(live workers: .*/gpus0,1 \\(2 GPUs\\)\\) for 2 s after submission \\(gpus_wait_s\\)`));
    // Taken out of its queue: no worker could take it later and run it twice.
    expect(await redis.exists(jobKey)).toBe(0);
  });

  it('moefarm workers shows the GPUs a worker owns and their links; submit warns of a GPU count no live worker owns', async () => {
    await startWorker([0, 1, 2, 3]);
    const env = { ...smi.env(), MOEFARM_PREFIX: queuePrefix(), DATABASE_URL: sqliteUrl(dir) };
    const listed = await cli(['workers'], env);
    expect(listed.exitCode).toBe(0);
    const row = listed.stdout.split('\n').find((l) => l.includes('/gpus0,1,2,3'))!;
    expect(row).toContain('4x Fake H100 (test double) #0,1,2,3 NV18 x6');
    const json = JSON.parse((await cli(['workers', '--json'], env)).stdout) as Array<{ gpuCount: number; topology: { summary: string }; gpus: unknown[] }>;
    expect(json[0]).toMatchObject({ gpuCount: 4, topology: { summary: 'NV18 x6' } });
    expect(json[0]!.gpus).toHaveLength(4);
    const file = join(dir, 'eight.yaml');
    writeFileSync(file, `name: eight\npool: ${pool}\ngpus_wait_s: 5\nmatrix:\n  variant: reference\n  model: tiny\n  gpus: [4, 8]\n  iters: 1\n`);
    const submitted = await cli(['sweep', 'submit', file], env);
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    expect(submitted.stderr).toContain(`warning: no live worker of pool ${pool} owns 8 GPUs (the most: 4): those points end as unsatisfiable 5 s after submission (gpus_wait_s)`);
  });

  it('refuses at submit a point with more GPUs than the variant can use, or experts that do not split evenly', () => {
    expect(() => sweep('', '  gpus: [3]\n')).toThrow(/matrix\.gpus\[0\]: variant reference of .* cannot run this point: experts \(16\) must be a multiple of gpus \(3\)/);
    expect(() => sweep('', '  gpus: [16]\n')).toThrow(/matrix\.gpus\[0\]: variant reference .*gpus \(16\) must be <= 8/);
    expect(() => planSweep(parseSweepText(`name: x\npool: p\nmatrix:\n  backend: cuda\n  variant: separate\n  model: tiny\n  gpus: [1, 2]\n`, 'x.yaml'))).toThrow(
      /matrix\.gpus\[1\]: variant separate .*gpus \(2\) must be <= 1 \(the variant has no multi-GPU code\)/,
    );
  });

  it('sweep status and sweep resume look in every GPU count\'s queue; the split runs fp8 and shared experts', async () => {
    // No worker yet: both jobs wait, each in its GPU count's queue.
    const shared = planSweep(
      parseSweepText(`name: mgpu-shared\npool: ${pool}\ntimeout_s: 120\nmatrix:\n  variant: [reference, fused]\n  model: tiny-shared\n  dtype: fp8\n  tokens: 2\n  warmup: 1\n  iters: 3\n  gpus: [1, 2]\n`, 'mgpu.yaml'),
    );
    expect(shared.points.map((p) => [p.point.variant, p.point.gpus ?? 1, p.point.shared_experts, p.point.dtype])).toEqual([
      ['reference', 1, 2, 'fp8'],
      ['reference', 2, 2, 'fp8'],
      ['fused', 1, 2, 'fp8'],
      ['fused', 2, 2, 'fp8'],
    ]);
    await submitPlan(db, redis, shared, null);
    const queueOf = (gpus: number) => runQueueName(pool, gpus);
    const inQueue = async (gpus: number) =>
      (await Promise.all(shared.runs.map((r) => redis.exists(`${queuePrefix()}:${queueOf(gpus)}:${r.id}`)))).reduce((n, x) => n + x, 0);
    expect([await inQueue(1), await inQueue(2)]).toEqual([2, 2]);
    // Every job is in hand, whichever queue holds it.
    expect((await sweepProgress(db, redis, shared.sweepId)).pools[0]).toMatchObject({ waiting: 4, noJob: 0 });
    // Redis loses the jobs of both queues: status says so, resume puts each back in its own queue.
    for (const g of [1, 2]) {
      const q = new Queue(queueOf(g), { connection: redis, prefix: queuePrefix() });
      await q.obliterate({ force: true });
      await q.close();
    }
    expect((await sweepProgress(db, redis, shared.sweepId)).pools[0]).toMatchObject({ noJob: 4 });
    const resumed = await resumeSweep(db, redis, planTemplate(shared));
    expect(resumed).toMatchObject({ queued: 4, enqueued: 4, inHand: 0 });
    expect([await inQueue(1), await inQueue(2)]).toEqual([2, 2]);
    // A worker of two GPUs runs them all; each result passed the oracle, the 2-GPU ones also the single-device comparison.
    await startWorker([0, 1]);
    await waitFor('the sweep to finish', () => runsSettled(db, shared.sweepId, shared.runs.length), 120_000);
    const runs = await db.run.findMany({ where: { sweepId: shared.sweepId } });
    expect(runs.map((r) => [r.status, r.reason])).toEqual(runs.map(() => ['done', null]));
    const res = await db.result.findMany({ where: { runId: { in: runs.map((r) => r.id) } } });
    expect(res).toHaveLength(4);
    expect(res.every((x) => x.checkPass)).toBe(true);
  });

  it('keeps one-GPU points as they were: gpus 1 adds nothing to a point, its hash or its queue', () => {
    const plain = sweep('', '');
    const one = sweep('', '  gpus: [1]\n');
    expect(one.points.map((p) => p.hash)).toEqual(plain.points.map((p) => p.hash));
    expect(one.points[0]!.point).not.toHaveProperty('gpus');
    expect(runQueueName('p', 1)).toBe('run.p');
    expect(runQueueName('p', 2)).toBe('run.p@g2');
  });
});

describe('the lock per GPU', () => {
  it('refuses a second worker asking for a GPU a live worker owns, naming the owner; it starts once the GPU is free', async () => {
    const host = await startWorker([0, 1]);
    void host;
    // In this process (the same pid: an in-process second worker) ...
    const conn = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    rig.cleanups.push(() => conn.disconnect());
    const second = new FarmWorker({ connection: conn, pool, backend: 'cpu', gpu: null, gpus: [1], arch: 'sm_90a', csrc: join(ROOT, 'csrc'), cache: join(dir, 'cache-link'), log: silentLog });
    const err = await second.start().then(
      () => null,
      (e: unknown) => e,
    );
    await second.close();
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/GPU 1 is already owned by worker \S+\/gpus0,1 \(pid \d+, since .*; lock .*gpu-1\.lock\): a GPU is run by one worker at a time/);
    // ... and from another process, as `moefarm worker --gpu 1` started beside a per-host worker would: exit 2, nothing taken.
    const spawned = await execa(process.execPath, [CLI, 'worker', '--pool', pool, '--gpu', '1', '--once'], {
      reject: false,
      env: { ...smi.env(), REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: queuePrefix(), MOEFARM_CACHE: join(dir, 'cache-link') },
    });
    expect(spawned.exitCode).toBe(2);
    expect(spawned.stderr).toMatch(/GPU 1 is already owned by worker \S+\/gpus0,1 \(pid \d+/);
    // GPU 2 is free: a per-GPU worker takes it beside the per-host one.
    const beside = await startWorker([2]);
    expect(beside.gpuCount).toBe(1);
    // Once the owner stops, GPU 1 can be taken.
    await host.close();
    const after = await startWorker([1]);
    expect(after.capabilities?.index).toBe(1);
  });

  it('takes over the lock of a worker that died without releasing it, and never a live one', () => {
    const locks = join(dir, 'locks');
    mkdirSync(locks, { recursive: true });
    // A lock left by a process that is gone (pid 2^22 - 1 is above the default pid_max).
    writeFileSync(join(locks, 'gpu-3.lock'), JSON.stringify({ gpu: 3, host: hostname(), worker: 'dead/worker', pid: 4194303, pidStart: '1', at: '2026-01-01T00:00:00.000Z' }));
    const lock = GpuLock.acquire(3, 'live/worker', locks);
    expect(() => GpuLock.acquire(3, 'other/worker', locks)).toThrow(GpuTakenError);
    lock.release();
    const again = GpuLock.acquire(3, 'other/worker', locks);
    again.release();
  });
});

describe('topology', () => {
  it('reads the link of each pair from nvidia-smi topo -m (terminal escapes, NIC rows and the legend ignored)', async () => {
    smi.update((s) => (s.links = { '0-1': 'NV18', '0-2': 'NV18', '1-2': 'NV18', '2-3': 'PIX' }));
    const out = await execa('nvidia-smi', ['topo', '-m'], { env: smi.env() });
    const m = parseTopoMatrix(out.stdout);
    expect(m?.gpus).toEqual([0, 1, 2, 3]);
    expect(m?.links).toMatchObject({ '0-1': 'NV18', '2-3': 'PIX', '0-3': 'SYS', '1-3': 'SYS' });
    expect(topologyOf(m, [1, 0])).toEqual({ gpus: [0, 1], links: { '0-1': 'NV18' }, summary: 'NV18' });
    expect(topologyOf(m, [0, 1, 2, 3]).summary).toBe('NV18 x3 + PIX + SYS x2');
    expect(topologyOf(null, [0, 1]).summary).toBe('?');
  });

  it('puts runs over NVLink and over PCIe in different environment groups, and leaves one-GPU groups as they were', () => {
    const point = { backend: 'cuda' as const, clock: 'default' as const, power: 'default' as const, gpus: 2 };
    const env = (summary: string) => runEnvironment({ point, envJson: JSON.stringify({ gpu: 'NVIDIA H100', gpus: 2, topology: { summary } }), telemetryJson: null, workerGpu: null, smClockBandMhz: 50 });
    const nvlink = env('NV18');
    const pcie = env('SYS');
    expect(envKey(nvlink)).not.toBe(envKey(pcie));
    expect(envLabel(nvlink)).toContain('2 GPUs NV18');
    expect(envKey(env('NV18'))).toBe(envKey(nvlink));
    const single = runEnvironment({ point: { backend: 'cuda', clock: 'default', power: 'default' }, envJson: JSON.stringify({ gpu: 'NVIDIA H100' }), telemetryJson: null, workerGpu: null, smClockBandMhz: 50 });
    expect(envKey(single)).toBe('NVIDIA H100|default|default|n/a');
  });
});
