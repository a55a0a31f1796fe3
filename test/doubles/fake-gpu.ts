/** Helpers around the nvidia-smi TEST DOUBLE (test/doubles/nvidia-smi). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DOUBLES_DIR = import.meta.dirname;

export interface FakeGpu {
  index: number;
  uuid: string;
  name: string;
  driver: string;
  cc: string;
  maxSm: number;
  base: number;
  clocks: number[];
  powerLimit: number;
  minLimit: number;
  maxLimit: number;
  defaultLimit: number;
  locked: number | null;
  reasons: number;
  ignoreLock?: boolean;
}

export interface FakeState {
  gpus: FakeGpu[];
  refuse: string[];
  /** Telemetry (-lms) waits this long before its first sample, as nvidia-smi on a loaded machine. */
  startDelayMs?: number;
  /** `topo -m`: the link of each pair, {"0-1": "NV18"}; a pair not listed is SYS. */
  links?: Record<string, string>;
  /** `topo -m` fails, as on an nvidia-smi without the subcommand. */
  noTopo?: boolean;
}

export function fakeH100(index = 0): FakeGpu {
  return {
    index,
    uuid: `GPU-fake-${index}`,
    name: 'Fake H100 (test double)',
    driver: '580.00',
    cc: '9.0',
    maxSm: 1980,
    base: 1755,
    clocks: [1980, 1965, 1755, 1410, 1200, 345],
    powerLimit: 700,
    minLimit: 200,
    maxLimit: 700,
    defaultLimit: 700,
    locked: null,
    reasons: 0,
  };
}

/** A fake host of `n` GPUs, every pair joined by `link` (NVSwitch-like; default NV18, as on an H100 SXM board). */
export function fakeHost(n: number, link = 'NV18'): Partial<FakeState> {
  const gpus = Array.from({ length: n }, (_, i) => fakeH100(i));
  const links: Record<string, string> = {};
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) links[`${i}-${j}`] = link;
  return { gpus, links };
}

export class FakeSmi {
  readonly dir = mkdtempSync(join(tmpdir(), 'moefarm-fake-smi-'));
  readonly statePath = join(this.dir, 'state.json');
  readonly logPath = join(this.dir, 'calls.log');
  /** The fake host's GPU lock folder (worker/gpu/lock.ts): one per fake host, so test files never share locks. */
  readonly lockDir = join(this.dir, 'gpu-locks');

  constructor(state: Partial<FakeState> = {}) {
    this.write({ gpus: [fakeH100(0), fakeH100(1)], refuse: [], ...state });
    writeFileSync(this.logPath, '');
  }

  /** Environment that puts the double first on PATH. */
  env(): Record<string, string> {
    return { PATH: `${DOUBLES_DIR}:${process.env['PATH'] ?? ''}`, FAKE_SMI_STATE: this.statePath, FAKE_SMI_LOG: this.logPath, MOEFARM_GPU_LOCK_DIR: this.lockDir };
  }

  /** Same, applied to this process (for in-process workers). */
  install(): void {
    Object.assign(process.env, this.env());
  }

  read(): FakeState {
    return JSON.parse(readFileSync(this.statePath, 'utf8')) as FakeState;
  }

  write(s: FakeState): void {
    writeFileSync(this.statePath, JSON.stringify(s, null, 2));
  }

  update(fn: (s: FakeState) => void): void {
    const s = this.read();
    fn(s);
    this.write(s);
  }

  /** Every call's arguments, in order. */
  calls(): string[][] {
    if (!existsSync(this.logPath)) return [];
    return readFileSync(this.logPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
  }

  /** Calls that change settings (-lgc, -rgc, -pl), as strings. */
  controlCalls(): string[] {
    return this.calls()
      .filter((a) => a.includes('-lgc') || a.includes('-rgc') || a.includes('-pl'))
      .map((a) => a.join(' '));
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
