/**
 * Services the farm starts for itself on a machine with nothing running: a
 * private redis-server (the demo's and the tests'), tethered to its owner so
 * that it stops however the owner ends.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { probeRedis } from '../src/queue/connection.js';
import { startPrivateRedis } from '../src/services/redis-server.js';
import { ROOT, cli, tempDir, waitFor } from './helpers/services.js';

const gone = async (url: string) => {
  const p = await probeRedis(url, 2000);
  return !p.ok && p.nothingListens;
};

describe('a private redis-server', () => {
  it('answers, then stops and leaves no folder behind', async () => {
    const r = await startPrivateRedis();
    expect(await probeRedis(r.url)).toEqual({ ok: true });
    expect(existsSync(r.dir)).toBe(true);
    await r.stop();
    await r.stop(); // idempotent
    expect(await gone(r.url)).toBe(true);
    expect(existsSync(r.dir)).toBe(false);
  });

  it('stops when the process that started it is killed with SIGKILL (no exit handler runs)', async () => {
    const owner = execa(process.execPath, [
      '--input-type=module',
      '-e',
      `const { startPrivateRedis } = await import(${JSON.stringify(join(ROOT, 'dist/src/services/redis-server.js'))});
       const r = await startPrivateRedis();
       process.stdout.write(r.url + '\\n');
       setInterval(() => {}, 1000);`,
    ]);
    owner.catch(() => {});
    let url = '';
    owner.stdout!.on('data', (d: Buffer) => (url += d.toString()));
    await waitFor('the owner to print the URL', async () => /redis:\/\/\S+\n/.test(url), 30_000, 50);
    url = url.trim();
    expect(await probeRedis(url)).toEqual({ ok: true });
    owner.kill('SIGKILL');
    await waitFor('the orphaned redis-server to stop', () => gone(url), 20_000);
  });
});

describe('moefarm demo on a machine with no Redis running', () => {
  it('starts a private redis-server, runs the demo, and leaves nothing running', async () => {
    const t = tempDir('demo');
    try {
      const r = await cli(['demo'], { REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: `file:${join(t.dir, 'demo.db')}`, MOEFARM_PREFIX: 'moefarm' }, { timeoutMs: 240_000 });
      expect(r.stderr + r.stdout).not.toMatch(/^moefarm: /m);
      expect(r.exitCode).toBe(0);
      const started = /no Redis at redis:\/\/127\.0\.0\.1:1: started a private redis-server at (redis:\/\/127\.0\.0\.1:\d+)/.exec(r.stdout);
      expect(started).not.toBeNull();
      expect(r.stdout).toMatch(/tiny T=1 bf16 +fused .*(FASTER|SAME|SLOWER|UNSURE)/);
      expect(r.stdout).toMatch(/next: moefarm results compare --sweep s[0-9a-f]+/);
      expect(await gone(started![1]!)).toBe(true);
    } finally {
      t.cleanup();
    }
  });

  it('says how to install redis-server when there is none on PATH (exit 3)', async () => {
    const r = await cli(['demo'], { REDIS_URL: 'redis://127.0.0.1:1', PATH: '/nonexistent', DATABASE_URL: 'file:/nonexistent/never.db' });
    expect(r.stderr).toMatch(/redis-server was not found on PATH: install one: `apt-get install redis-server`/);
    expect(r.exitCode).toBe(3);
  });

  it('does not hide a Redis that is there but refuses (wrong password): exit 3, no private server', async () => {
    const own = await startPrivateRedis();
    try {
      await execa('redis-cli', ['-p', String(own.port), 'CONFIG', 'SET', 'requirepass', 'sekret']);
      const r = await cli(['demo'], { REDIS_URL: `redis://:wrong@127.0.0.1:${own.port}`, DATABASE_URL: 'file:/nonexistent/never.db' });
      expect(r.stderr).toMatch(/cannot use Redis at redis:\/\/\*\*\*@127\.0\.0\.1:\d+/);
      expect(r.stderr).not.toContain('wrong');
      expect(r.stdout).not.toMatch(/private redis-server/);
      expect(r.exitCode).toBe(3);
    } finally {
      await own.stop();
    }
  });
});
