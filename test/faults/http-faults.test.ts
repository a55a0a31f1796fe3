/**
 * `moefarm serve --http` as a real child process, over a database a real
 * worker and collector filled (CPU binary, test-owned redis-server, SQLite).
 *
 * The faults this reproduces: malformed percent-encoding gave a 500 with a
 * stack trace in the log; the report page had no Content-Security-Policy
 * header; report requests were rendered on the loop that also answers
 * /healthz and runs the collector (200 concurrent reports: /healthz took
 * 16 s). Responsiveness is measured by `npm run bench:http` (README); here the
 * test checks what makes it hold: /healthz is answered while reports are being
 * rendered, a burst of one report is one render served to all, and a cached
 * page is never older than the data.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recordOutcome } from '../../src/db/record.js';
import { toJob } from '../../src/queue/job.js';
import { nothingRan } from '../../src/schema/job.js';
import { CLI, waitFor } from '../helpers/services.js';
import { rig, teardown, warmBuild, type Rig } from './common.js';
import { enqueuePlan, report, settled, spawnProc, startWorker, type Proc } from './procs.js';
import { range, tinyPlan } from './sweeps.js';

beforeAll(warmBuild, 120_000);
afterEach(teardown);

/** A raw GET: the path goes out exactly as written (fetch would normalise or refuse a malformed one). */
function get(base: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; at: number }> {
  return new Promise((resolveGet, reject) => {
    const req = request(`${base}/`, { path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, headers: res.headers, body, at: performance.now() }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function served(r: Rig): Promise<{ base: string; serve: Proc; sweepId: string; plan: ReturnType<typeof tinyPlan> }> {
  const serve = spawnProc('serve --http', process.execPath, [CLI, 'serve', '--http', '0'], { ...r.redis.clientEnv(), MOEFARM_PREFIX: r.prefix, DATABASE_URL: r.dbUrl });
  await serve.waitFor(/http: reports at http:\/\/\S+/);
  const base = /http: reports at (http:\/\/[^\s/]+)/.exec(serve.output())![1]!;
  const plan = tinyPlan(r.pool, { variants: ['reference', 'fused'], tokens: range(4), repeat: 3, iters: 20 });
  await enqueuePlan(r.db, r.client, r.prefix, plan);
  await startWorker(r, r.pool, 'w-http');
  await waitFor('the sweep to be recorded', () => settled(r.db, plan.sweepId, plan.runs.length), 60_000);
  return { base, serve, sweepId: plan.sweepId, plan };
}

describe('moefarm serve --http', () => {
  it('answers malformed URLs with 400, no stack trace; every response has a CSP, the report one with its scripts by hash', async () => {
    const r = await rig('http-urls');
    const { base, serve, sweepId } = await served(r);
    for (const path of ['/sweeps/%E0%A4%A/report', '/%', '/sweeps/%zz/compare.json', '/%C0%AF']) {
      const res = await get(base, path);
      expect(res.status, path).toBe(400);
      expect(res.body).toBe('malformed URL (bad percent-encoding or syntax)\n');
    }
    expect((await get(base, '/sweeps/nope/report')).status).toBe(404);
    expect((await get(base, '/elsewhere')).status).toBe(404);
    expect(serve.output()).not.toMatch(/internal error|URIError|\n\s+at /);

    const page = await get(base, `/sweeps/${sweepId}/report`);
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/^default-src 'none'; script-src 'sha256-/);
    const scriptSrc = /script-src ([^;]*)/.exec(csp)![1]!;
    expect(scriptSrc).not.toMatch(/unsafe/); // scripts by hash only (styles may be inline)
    const scripts = [...page.body.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
    expect(scripts.length).toBe(2); // Chart.js and the page script
    for (const h of scripts) expect(csp).toContain(h);
    for (const path of ['/', `/sweeps/${sweepId}/compare.json`, '/healthz', '/nope', '/%']) {
      expect((await get(base, path)).headers['content-security-policy'], path).toMatch(/default-src 'none'/);
    }
    report('malformed URLs and CSP', { malformed: 4, status: 400, stackTraces: 0, reportCsp: 'script hashes' });
  });

  it('renders off the loop: /healthz is answered while reports render; a burst of one report is rendered once; the cache follows the data', async () => {
    const r = await rig('http-load');
    const { base, sweepId, plan } = await served(r);
    const path = `/sweeps/${sweepId}/report`;
    // A burst of the same report, and /healthz asked once the burst is under way.
    const burst = Array.from({ length: 100 }, () => get(base, path));
    const health = await get(base, '/healthz');
    const pages = await Promise.all(burst);
    expect(health.status).toBe(200);
    const stillRendering = pages.filter((p) => p.at > health.at).length;
    expect(stillRendering).toBeGreaterThan(0); // answered before reports that were asked for first
    expect(pages.every((p) => p.status === 200)).toBe(true);
    expect(new Set(pages.map((p) => p.body)).size).toBe(1); // one render, served to all

    // The cache is keyed by the data: an outcome written after the page was rendered shows at once.
    const before = JSON.parse((await get(base, `/sweeps/${sweepId}/compare.json`)).body) as unknown;
    const extra = plan.runs[0]!;
    await recordOutcome(r.db, {
      runId: `${sweepId}-extra-r0`,
      sweepId,
      pool: r.pool,
      job: { ...toJob(plan, extra, Date.now()), runId: `${sweepId}-extra-r0`, rep: 99 },
      status: 'crashed',
      reason: 'written by the test after the page was cached',
      attempts: 1,
      ...nothingRan(),
      finishedAt: Date.now(),
    });
    const after = await get(base, `/sweeps/${sweepId}/report`);
    expect(after.body).not.toBe(pages[0]!.body);
    expect(after.body).toContain('crashed');
    expect(JSON.parse((await get(base, `/sweeps/${sweepId}/compare.json`)).body)).not.toEqual(before);
    report('reports off the loop', { burst: 100, distinctBodies: 1, answeredAfterHealthz: stillRendering });
  });
});
