/**
 * Settings read from the environment, in one place, with their defaults:
 * every REDIS_URL, DATABASE_URL and MOEFARM_* variable the farm reads is read
 * by a function here (README "Settings" lists them). The exceptions are
 * commander's own `--log-format` fallback to MOEFARM_LOG_FORMAT (cli.ts) and
 * PATH, which only finds programs.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the project checkout (holds csrc/, sweeps/, prisma/): found from this file, compiled (dist/src) or not (src). */
export const projectRoot = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'prisma', 'models.prisma'))) return dir;
    if (dirname(dir) === dir) return resolve(start, '..', '..');
  }
}

/** Redis holding the queues. Default: a local redis-server. */
export function redisUrl(): string {
  return process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
}

/** Database of results. Default: the embedded SQLite file ./moefarm.db. */
export function databaseUrl(): string {
  return process.env['DATABASE_URL'] ?? 'file:./moefarm.db';
}

/** Whether DATABASE_URL is set (databaseUrl() falls back to the default file otherwise). */
export function databaseUrlIsSet(): boolean {
  return process.env['DATABASE_URL'] !== undefined;
}

/** Prefix of every Redis key the farm writes (BullMQ's prefix). Tests set their own. */
export function queuePrefix(): string {
  return process.env['MOEFARM_PREFIX'] ?? 'moefarm';
}

/** Where built binaries are cached, content-addressed. */
export function cacheDir(): string {
  const explicit = process.env['MOEFARM_CACHE'];
  if (explicit) return resolve(explicit);
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg ? xdg : join(homedir(), '.cache'), 'moefarm');
}

/**
 * The host's state folder: worker leases and GPU-control records, shared by every worker on the host so that one
 * can clean up after another that died. MOEFARM_STATE_DIR overrides `<cache>/state` (the default), for hosts whose
 * cache is shared between machines, and for tests that must not see other tests' workers.
 */
export function stateDir(): string {
  const explicit = process.env['MOEFARM_STATE_DIR'];
  return explicit ? resolve(explicit) : join(cacheDir(), 'state');
}

/** Source tree of the native binary. */
export function csrcDir(): string {
  return process.env['MOEFARM_CSRC'] ? resolve(process.env['MOEFARM_CSRC']) : join(projectRoot, 'csrc');
}

/** Largest compressed source bundle a sweep may carry, bytes (submit refuses more; a worker refuses more too). */
export function bundleMaxBytes(): number {
  const v = Number(process.env['MOEFARM_BUNDLE_MAX_BYTES']);
  return Number.isInteger(v) && v > 0 ? v : 4 * 1024 * 1024;
}

/** How long a source bundle stays in Redis after the last sweep that needed it finished, seconds. */
export function bundleGraceSeconds(): number {
  const v = Number(process.env['MOEFARM_BUNDLE_GRACE_S']);
  return Number.isFinite(v) && v >= 1 ? v : 3600;
}

/**
 * Lock on a job a worker runs or a result the collector writes, ms: a killed process's job is taken
 * over after about this long. Unset (or under 500, or not an integer): the caller's default, 30000.
 * Tests shorten it.
 */
export function lockDurationMs(): number | undefined {
  const v = Number(process.env['MOEFARM_LOCK_MS']);
  return Number.isInteger(v) && v >= 500 ? v : undefined;
}

/** How long a job waiting for a power source sleeps between checks, ms. Unset: the worker's default (30000). */
export function powerRetryMs(): number | undefined {
  const raw = process.env['MOEFARM_POWER_RETRY_MS'];
  const v = Number(raw);
  return raw && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Expiry of a worker's live heartbeat key, seconds; it beats four times per expiry. Default 20; tests shorten it. */
export function heartbeatTtlSeconds(): number {
  const v = Number(process.env['MOEFARM_HEARTBEAT_TTL_S'] ?? 20);
  return Number.isFinite(v) && v > 0 ? v : 20;
}

/** First retry delay of a webhook POST that failed, ms (it doubles each try). Unset: the notifier's default. Tests shorten it. */
export function notifyBackoffMs(): number | undefined {
  const v = Number(process.env['MOEFARM_NOTIFY_BACKOFF_MS']);
  return Number.isInteger(v) && v >= 1 ? v : undefined;
}

/** Bound on a point's weights that submit accepts, GiB (a positive number). Unset: the caller's default (80, an H100). */
export function maxWeightGib(): number | undefined {
  const v = Number(process.env['MOEFARM_MAX_WEIGHT_GIB']);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

/** Where the OS lists power supplies (a laptop's AC adapter and battery). */
export function powerSupplyDir(): string {
  return process.env['MOEFARM_POWER_SUPPLY_DIR'] ?? '/sys/class/power_supply';
}

/** Host-wide folder of the lock per GPU (worker/gpu/lock.ts): every worker of a host must see the same one. */
export function gpuLockDir(): string {
  return process.env['MOEFARM_GPU_LOCK_DIR'] ?? '/tmp/moefarm-gpu-locks';
}

/** The nvidia-smi the worker calls (a path or a name on PATH). */
export function nvidiaSmi(): string {
  return process.env['MOEFARM_NVIDIA_SMI'] ?? 'nvidia-smi';
}
