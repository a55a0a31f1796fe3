/**
 * GPU environment control and recording, against the nvidia-smi TEST DOUBLE
 * (test/doubles/nvidia-smi) first on PATH: CI has no GPU. The same code paths
 * run for real on the GPU host (csrc/BENCHMARKS.md, README "GPU environment").
 * The native binary is the real CPU build; the worker owns "GPU 0" of the
 * double through --gpu 0.
 */
import { mkdirSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queuePrefix } from '../src/config.js';
import type { Db } from '../src/db/client.js';
import { recordPlan } from '../src/db/plan.js';
import { runQueueName } from '../src/queue/names.js';
import { RUN_JOB_OPTIONS } from '../src/queue/options.js';
import { planBundles, submitPlan } from '../src/queue/submit.js';
import { toJob } from '../src/queue/job.js';
import { storeBundles } from '../src/source/store.js';
import { TelemetrySchema } from '../src/schema/telemetry.js';
import { planSweep, type Plan } from '../src/sweep/expand.js';
import { parseSweepText } from '../src/sweep/load.js';
import { FarmWorker, type WorkerOptions } from '../worker/worker.js';
import { readPowerSource } from '../worker/gpu/capabilities.js';
import { readWorkers } from '../worker/heartbeat.js';
import { decodeReasons } from '../worker/gpu/telemetry.js';
import { FakeSmi } from './doubles/fake-gpu.js';
import { TEST_REDIS_URL } from './helpers/env.js';
import { runsSettled } from './helpers/farm.js';
import { gpuRig, startRigWorker, type GpuRig } from './helpers/gpu-rig.js';
import { CLI, waitFor } from './helpers/services.js';

// A farm on the double's GPUs per test (test/helpers/gpu-rig.ts); its parts by name.
let rig: GpuRig;
let smi: FakeSmi, dir: string, pool: string, db: Db, redis: Redis;
beforeEach(async () => {
  rig = await gpuRig('gpuenv', { reconcileEveryMs: 500 });
  ({ smi, dir, pool, db, redis } = rig);
});
afterEach(() => rig.close());

function startWorker(extra: Partial<WorkerOptions> = {}): Promise<FarmWorker> {
  return startRigWorker(rig, { gpu: 0, ...extra });
}

function sweep(extra: string, matrixExtra = ''): Plan {
  return planSweep(
    parseSweepText(
      `name: gpuenv\npool: ${pool}\ntimeout_s: 60\n${extra}\nmatrix:\n  variant: reference\n  model: tiny\n  warmup: 1\n  iters: 5\n${matrixExtra}`,
      'gpuenv.yaml',
    ),
    // The CPU backend stands in for a GPU's here (no GPU in CI): let its points ask for clocks and power.
    { gpuSettingsOnCpu: true },
  );
}

async function runSweep(plan: Plan) {
  await submitPlan(db, redis, plan, null);
  await waitFor('the sweep to finish', () => runsSettled(db, plan.sweepId, plan.runs.length), 90_000);
  return db.run.findMany({ where: { sweepId: plan.sweepId }, orderBy: { id: 'asc' } });
}

/** GPU-control markers in the worker's state folder (it also holds the workers' leases, worker/lease.ts). */
function markers(): string[] {
  return readdirSync(join(dir, 'cache-link', 'state')).filter((f) => f.startsWith('gpu-control-'));
}

describe('capabilities', () => {
  it('probes the GPU and refuses control without the permission flags', async () => {
    const w = await startWorker();
    const c = w.capabilities!;
    expect(c).toMatchObject({ index: 0, uuid: 'GPU-fake-0', name: 'Fake H100 (test double)', driver: '580.00', computeCapability: '9.0', maxSmClockMhz: 1980, baseClockMhz: 1755, powerLimitW: 700, powerLimitRangeW: [200, 700] });
    expect(c.graphicsClocksMhz).toEqual([1980, 1965, 1755, 1410, 1200, 345]);
    expect(c.clockControl).toEqual({ allowed: false, reason: 'not permitted: the worker was started without --allow-clock-control' });
    expect(c.powerControl.allowed).toBe(false);
    expect(smi.calls().every((a) => a[0] === '-i' && a[1] === '0')).toBe(true);
  });

  it('turns a point asking for control it may not exercise into `unsatisfiable`, changing nothing', async () => {
    await startWorker();
    const runs = await runSweep(sweep('', '  clock: [default, {lock: 1410}, max]\n  power: [default, {limit: 300}]\n'));
    const byParams = runs.map((r) => ({ status: r.status, reason: r.reason, params: JSON.parse(r.params)[0].point }));
    const ok = byParams.filter((r) => r.status === 'done');
    expect(ok).toHaveLength(1);
    expect(ok[0]!.params).toMatchObject({ clock: 'default', power: 'default' });
    const bad = byParams.filter((r) => r.status !== 'done');
    expect(bad).toHaveLength(5);
    for (const r of bad) {
      expect(r.status).toBe('unsatisfiable');
      expect(r.reason).toMatch(new RegExp(`^worker .*${pool}.* \\(GPU 0, Fake H100 \\(test double\\)\\): (clock|power)`));
      expect(r.reason).toMatch(/started without --allow-(clock|power)-control/);
    }
    expect(smi.controlCalls()).toEqual([]);
  });
});

describe('applying and restoring', () => {
  it('locks the clock for the run, restores it after, and records what was applied and observed', async () => {
    await startWorker({ allowClockControl: true, allowPowerControl: true });
    const runs = await runSweep(sweep('', '  clock: {lock: 1410}\n  power: {limit: 300}\n'));
    expect(runs[0]!.status).toBe('done');
    expect(smi.controlCalls()).toEqual(['-i 0 -lgc 1410,1410', '-i 0 -pl 300', '-i 0 -rgc', '-i 0 -pl 700']);
    expect(smi.read().gpus[0]).toMatchObject({ locked: null, powerLimit: 700 });
    expect(smi.read().gpus[1]).toMatchObject({ locked: null, powerLimit: 700 }); // the other GPU untouched
    const env = JSON.parse(runs[0]!.env!);
    expect(env).toMatchObject({ requestedSmMhz: 1410, powerLimitW: 300, gpu: 'Fake H100 (test double)', gpuUuid: 'GPU-fake-0', telemetrySmMhz: 1410 });
    expect(runs[0]!.flags).toBe('');
    const tel = TelemetrySchema.parse(JSON.parse(runs[0]!.telemetry!));
    expect(tel.summary!.samples).toBeGreaterThan(0);
    expect(tel.summary!.sm_mhz).toEqual({ min: 1410, median: 1410, max: 1410 });
    expect(tel.samples!.t_ms.length).toBe(tel.samples!.sm_mhz.length);
    expect(existsSync(join(dir, 'cache-link', 'state'))).toBe(true);
    expect(markers()).toEqual([]); // marker removed after restore
  });

  it('maps max and base to the GPU\'s own clocks', async () => {
    await startWorker({ allowClockControl: true });
    await runSweep(sweep('', '  clock: [max, base]\n'));
    expect(smi.controlCalls().sort()).toEqual(['-i 0 -lgc 1755,1755', '-i 0 -lgc 1980,1980', '-i 0 -rgc', '-i 0 -rgc']);
  });

  it('records a driver refusal as `unsatisfiable` and leaves the GPU as it was', async () => {
    smi.update((s) => (s.refuse = ['lgc']));
    await startWorker({ allowClockControl: true });
    const runs = await runSweep(sweep('', '  clock: {lock: 1410}\n'));
    expect(runs[0]!.status).toBe('unsatisfiable');
    expect(runs[0]!.reason).toMatch(/locking GPU 0 to 1410 MHz was refused by the driver: .*Insufficient Permissions/);
    expect(smi.read().gpus[0]!.locked).toBeNull();
  });

  it('refuses a clock the GPU does not support and a power limit outside its range', async () => {
    await startWorker({ allowClockControl: true, allowPowerControl: true });
    const runs = await runSweep(sweep('', '  clock: [{lock: 1234}, default]\n  power: [default, {limit: 900}]\nexclude:\n  - {clock: default, power: default}\n  - {clock: {lock: 1234}, power: {limit: 900}}\n'));
    const reasons = runs.map((r) => `${r.status}: ${r.reason}`).sort();
    expect(reasons[0]).toMatch(/unsatisfiable: .*clock 1234 MHz is not a supported graphics clock/);
    expect(reasons[1]).toMatch(/unsatisfiable: .*power limit 900 W is outside the GPU's range 200..700 W/);
    expect(smi.controlCalls()).toEqual([]);
  });
});

describe('telemetry and flags', () => {
  it('decodes clock-event reasons and flags a throttled run', async () => {
    expect(decodeReasons(0x4 | 0x40 | 0x1)).toEqual(['GpuIdle', 'SwPowerCap', 'HwThermalSlowdown']);
    smi.update((s) => (s.gpus[0]!.reasons = 0x4 | 0x40));
    await startWorker();
    const runs = await runSweep(sweep(''));
    expect(runs[0]!.status).toBe('done');
    expect(runs[0]!.flags).toBe('throttled');
    expect(runs[0]!.reason).toMatch(/throttle reasons active: SwPowerCap, HwThermalSlowdown/);
    const tel = TelemetrySchema.parse(JSON.parse(runs[0]!.telemetry!));
    expect(tel.summary!.reasons).toEqual(['SwPowerCap', 'HwThermalSlowdown']);
  });

  it('flags a clock mismatch when the locked clock is not what the GPU runs at', async () => {
    smi.update((s) => (s.gpus[0]!.ignoreLock = true));
    await startWorker({ allowClockControl: true });
    const runs = await runSweep(sweep('', '  clock: {lock: 1410}\n'));
    expect(runs[0]!.flags).toBe('clock-mismatch');
    expect(runs[0]!.reason).toMatch(/locked 1410 MHz, observed 1980 MHz/);
  });
});

describe('telemetry of runs shorter than nvidia-smi\'s start-up', () => {
  it('starts the timed binary only after the first sample, so a tiny run still has a reading', async () => {
    // 1.5 s before the first sample; the run itself takes a few ms. Before the fix the run ended first and had none.
    smi.update((s) => (s.startDelayMs = 1500));
    await startWorker({ allowClockControl: true });
    const runs = await runSweep(sweep('', '  clock: {lock: 1200}\n'));
    expect(runs[0]!.status).toBe('done');
    const tel = TelemetrySchema.parse(JSON.parse(runs[0]!.telemetry!));
    expect(tel.summary!.samples).toBeGreaterThan(0);
    expect(tel.summary!.sm_mhz!.median).toBe(1200);
    expect(JSON.parse(runs[0]!.env!)).toMatchObject({ telemetrySmMhz: 1200, requestedSmMhz: 1200 });
    // The first sample came before the binary started: the whole run is after the sampler's start-up.
    expect(tel.samples!.t_ms[0]!).toBeGreaterThanOrEqual(1400);
    expect(runs[0]!.flags).toBe('');
  });
});

describe('power source', () => {
  function supplies(online: boolean): string {
    const root = join(dir, 'power_supply');
    mkdirSync(join(root, 'AC'), { recursive: true });
    mkdirSync(join(root, 'BAT0'), { recursive: true });
    writeFileSync(join(root, 'AC', 'type'), 'Mains\n');
    writeFileSync(join(root, 'AC', 'online'), online ? '1\n' : '0\n');
    writeFileSync(join(root, 'BAT0', 'type'), 'Battery\n');
    return root;
  }

  it('reads AC and battery from sysfs', () => {
    expect(readPowerSource(supplies(true))).toBe('ac');
    expect(readPowerSource(supplies(false))).toBe('battery');
    expect(readPowerSource(join(dir, 'nowhere'))).toBe('unknown');
  });

  it('keeps a point waiting for its power source until the deadline, then fails it with the reason', async () => {
    process.env['MOEFARM_POWER_SUPPLY_DIR'] = supplies(false);
    rig.cleanups.push(() => delete process.env['MOEFARM_POWER_SUPPLY_DIR']);
    await startWorker({ powerRetryMs: 300 });
    const t0 = Date.now();
    const runs = await runSweep(sweep('power_wait_s: 2', '  power: [ac, battery]\n'));
    const byPower = Object.fromEntries(runs.map((r) => [JSON.parse(r.params)[0].point.power, r]));
    expect(byPower['battery']!.status).toBe('done');
    expect(byPower['ac']!.status).toBe('unsatisfiable');
    expect(byPower['ac']!.reason).toMatch(/power source 'ac' required, but it was 'battery' until the deadline \(2 s after submission\)/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
  });
});

describe('crash and signals (worker processes)', () => {
  function spawnWorker(flags: string[]) {
    return execa(process.execPath, [CLI, 'worker', '--pool', pool, '--gpu', '0', '--test-hooks', ...flags], {
      reject: false,
      env: { ...smi.env(), REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: queuePrefix(), MOEFARM_CACHE: join(dir, 'cache-link'), MOEFARM_LOCK_MS: '2000', MOEFARM_HEARTBEAT_TTL_S: '2' },
    });
  }

  async function enqueueSlow(plan: Plan, sleepMs: number): Promise<void> {
    await recordPlan(db, plan, null);
    await storeBundles(redis, plan.sweepId, planBundles(plan));
    const q = new Queue(runQueueName(pool), { connection: redis, prefix: queuePrefix() });
    await q.add('run', { ...toJob(plan, plan.runs[0]!, Date.now()), test: { sleepMs } }, { ...RUN_JOB_OPTIONS, jobId: plan.runs[0]!.id });
    await q.close();
  }

  it('restores the clock at the next start after a worker died holding it, and the job still ends once', async () => {
    const plan = sweep('', '  clock: {lock: 1410}\n');
    await enqueueSlow(plan, 4000);
    const first = spawnWorker(['--allow-clock-control']);
    await waitFor('the clock to be locked', async () => smi.read().gpus[0]!.locked === 1410);
    first.kill('SIGKILL');
    await first;
    expect(smi.read().gpus[0]!.locked).toBe(1410); // the dead process left it locked
    expect(markers()).toHaveLength(1); // ... and a marker saying so

    // `moefarm workers` shows it silent once its heartbeat lapses (its live key expires, 2 s here).
    await waitFor('the dead worker\'s heartbeat to lapse', async () => {
      const workers = await readWorkers(redis);
      return workers.length > 0 && workers.every((w) => !w.live);
    }, 15_000, 100);
    const listed = await execa(process.execPath, [CLI, 'workers'], { env: { REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: queuePrefix(), MOEFARM_HEARTBEAT_TTL_S: '2' } });
    expect(listed.stdout).toMatch(/SILENT \d+s/);
    expect(listed.stdout).toContain('Fake H100 (test double) #0');

    const second = spawnWorker(['--allow-clock-control']);
    await waitFor('the job to be taken over and finish', () => runsSettled(db, plan.sweepId, 1), 60_000);
    second.kill('SIGTERM');
    const out = await second;
    expect(out.stderr).toMatch(/restored GPU 0 settings left by process \d+/);
    const calls = smi.controlCalls();
    expect(calls.slice(0, 2)).toEqual(['-i 0 -lgc 1410,1410', '-i 0 -rgc']); // lock, then the restore at start
    expect(calls.at(-1)).toBe('-i 0 -rgc');
    expect(smi.read().gpus[0]!.locked).toBeNull();
    const run = await db.run.findFirstOrThrow({ where: { sweepId: plan.sweepId } });
    expect(run.status).toBe('done');
    expect(await db.result.count({ where: { runId: run.id } })).toBe(1);
  });

  it('on SIGTERM finishes the run in flight, restores the clock and exits', async () => {
    const plan = sweep('', '  clock: {lock: 1200}\n');
    await enqueueSlow(plan, 1500);
    const w = spawnWorker(['--allow-clock-control']);
    await waitFor('the clock to be locked', async () => smi.read().gpus[0]!.locked === 1200);
    w.kill('SIGTERM');
    const out = await w;
    expect(out.exitCode).toBe(0);
    expect(smi.read().gpus[0]!.locked).toBeNull();
    await waitFor('the outcome to be recorded', () => runsSettled(db, plan.sweepId, 1));
    expect((await db.run.findFirstOrThrow({ where: { sweepId: plan.sweepId } })).status).toBe('done');
  });
});
