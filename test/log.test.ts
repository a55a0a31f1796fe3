/**
 * Logs as an operator reads them: the real `moefarm worker` and `moefarm
 * serve` processes with --log-format json / MOEFARM_LOG_FORMAT=json, one line
 * per job with its ids, status, wall time and worker; and the logger's
 * redaction of credentials, wherever they sit in a line.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDb } from '../src/db/client.js';
import { createLogger } from '../src/util/log.js';
import { runsSettled } from './helpers/farm.js';
import { TEST_CACHE, TEST_REDIS_URL } from './helpers/env.js';
import { CLI, ROOT, cli, scratch, sqliteUrl, waitFor } from './helpers/services.js';

let cleanups: Array<() => unknown> = [];
beforeEach(() => {
  cleanups = [];
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
});

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('structured logs of the worker and the collector', () => {
  it('one JSON line per job in each, with run, sweep, status, wall time and worker', async () => {
    const fresh = scratch('log', cleanups);
    const dbUrl = sqliteUrl(fresh.dir);
    const pool = `log-${fresh.prefix}`;
    const file = join(fresh.dir, 'log.yaml');
    writeFileSync(file, `name: logs\npool: ${pool}\nmatrix:\n  model: tiny\n  variant: reference\n  tokens: [1, 2]\n  warmup: 1\n  iters: 5\n`);
    const env = { REDIS_URL: TEST_REDIS_URL, MOEFARM_PREFIX: fresh.prefix, MOEFARM_CACHE: TEST_CACHE, DATABASE_URL: dbUrl };
    const sub = await cli(['sweep', 'submit', file, '--json'], { DATABASE_URL: dbUrl });
    const sweepId = (JSON.parse(sub.stdout) as { sweepId: string }).sweepId;

    const worker = await execa(process.execPath, [CLI, 'worker', '--pool', pool, '--once', '--log-format', 'json'], { cwd: ROOT, env, reject: false, timeout: 120_000 });
    expect(worker.exitCode, worker.stderr).toBe(0);
    const wl = jsonLines(worker.stderr);
    expect(wl.length).toBe(worker.stderr.trim().split('\n').length); // every line is JSON
    const jobs = wl.filter((l) => l['event'] === 'job');
    expect(jobs).toHaveLength(2);
    for (const j of jobs) {
      expect(j).toMatchObject({ name: 'worker', level: 30, sweepId, pool, status: 'done', attempt: 1, builds: ['default'], variants: ['reference'] });
      expect(j['runId']).toMatch(new RegExp(`^${sweepId}-`));
      expect(j['worker']).toMatch(new RegExp(`/${pool}/`));
      expect(j['wallMs']).toEqual(expect.any(Number));
      expect(typeof j['time']).toBe('string');
    }
    expect(wl.find((l) => l['event'] === 'stop')).toMatchObject({ jobs: 2 });

    const serve = execa(process.execPath, [CLI, 'serve'], { cwd: ROOT, env: { ...env, MOEFARM_LOG_FORMAT: 'json' }, reject: false, timeout: 120_000 });
    const db = await openDb({ url: dbUrl });
    cleanups.push(() => db.$disconnect());
    await waitFor('the outcomes to be written', () => runsSettled(db, sweepId, 2));
    serve.kill('SIGTERM');
    const out = await serve;
    const cl = jsonLines(String(out.stderr));
    const written = cl.filter((l) => l['event'] === 'outcome');
    expect(written.map((l) => l['runId']).sort()).toEqual(jobs.map((j) => j['runId']).sort());
    for (const w of written) expect(w).toMatchObject({ name: 'collector', sweepId, status: 'done', written: 'recorded', results: 1, worker: jobs[0]!['worker'] });
    expect(cl.find((l) => l['event'] === 'stop')).toMatchObject({ recorded: 2, duplicates: 0 });
  }, 180_000);
});

describe('the logger', () => {
  it('hides passwords in URLs in the message, in fields at any depth and in errors; pretty lines are one line each', () => {
    const lines: string[] = [];
    const json = createLogger({ name: 'collector', format: 'json', write: (l) => lines.push(l) });
    json.warn({ url: 'redis://:hunter2@queue:6379', nested: { list: ['postgres://moe:hunter2@db/x'] }, err: new Error('connect rediss://u:hunter2@q failed') }, 'lost redis://:hunter2@queue');
    const pretty = createLogger({ name: 'worker', write: (l) => lines.push(l) });
    pretty.info({ runId: 'r1', url: 'redis://:hunter2@q' }, 'job done');
    const all = lines.join('');
    expect(all).not.toContain('hunter2');
    const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(rec).toMatchObject({ msg: 'lost redis://***@queue', url: 'redis://***@queue:6379', nested: { list: ['postgres://***@db/x'] }, err: 'connect rediss://***@q failed' });
    expect(lines[1]!.trimEnd().split('\n')).toHaveLength(1);
    expect(lines[1]).toMatch(/INFO: worker: job done \{"runId":"r1","url":"redis:\/\/\*\*\*@q"\}/);
  });
});
