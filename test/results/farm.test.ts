/**
 * On a real farm in this process (real Redis, SQLite, the CPU binary): a
 * sweep of two variants with a real difference (reference vs fused) is
 * submitted with one repetition, which is UNSURE by rule; --until-confident
 * adds repetitions of exactly those runs until the comparison is decided
 * (FASTER, interval above 1). Meanwhile `sweep status --watch` follows it.
 * Then the report of that sweep is opened in Chromium, from a file and from
 * the HTTP server, and its charts are counted.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer } from '../../src/http/server.js';
import { renderReport } from '../../src/report/html.js';
import { untilConfident } from '../../src/queue/until-confident.js';
import { buildReportData } from '../../src/results/report-data.js';
import { renderProgress, sweepProgress } from '../../src/results/progress.js';
import { submitPlan } from '../../src/queue/submit.js';
import { planSweep } from '../../src/sweep/expand.js';
import { parseSweepText } from '../../src/sweep/load.js';
import { startFarm, type Farm } from '../helpers/farm.js';
import { cli, scratch, sqliteUrl } from '../helpers/services.js';


const SWEEP = (pool: string, name: string, repeat = 1) => `
name: ${name}
pool: ${pool}
repeat: ${repeat}
timeout_s: 60
baseline: {variant: reference}
matrix:
  variant: [reference, fused]
  model: tiny
  tokens: [4]
  warmup: 3
  iters: 80
`;

let farm: Farm;
let pool: string;
let dbUrl: string;
let browser: Browser;
let dir: string;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  const fresh = scratch('results-farm', cleanups);
  dbUrl = sqliteUrl(fresh.dir);
  pool = `pool-${fresh.prefix}`;
  farm = await startFarm({ dbUrl, pool });
  cleanups.push(farm.close);
  browser = await launchChromium();
  cleanups.push(() => browser.close());
  dir = mkdtempSync(join(tmpdir(), 'moefarm-results-report-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
}, 120_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface ChartInfo {
  id: string;
  kind: string;
  series: number;
  points: number[];
}

async function openReport(url: string): Promise<{ charts: ChartInfo[]; errors: string[]; offsite: string[]; telemetryText: string; speedupText: string; historyText: string; latencyRows: string[][] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const offsite: string[] = [];
  const origin = url.startsWith('file:') ? 'file:' : new URL(url).origin;
  await context.route('**/*', async (route) => {
    if (route.request().url().startsWith(origin)) return route.continue();
    offsite.push(route.request().url());
    return route.abort();
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset['ready'] === '1', undefined, { timeout: 20_000 });
  const live = (await page.evaluate(() => (window as unknown as { __moefarmCharts: unknown }).__moefarmCharts)) as ChartInfo[];
  const charts = live.map((c) => ({ id: c.id, kind: c.kind, series: c.series, points: c.points }));
  const telemetryText = await page.locator('#telemetry').innerText();
  const speedupText = await page.locator('#speedups').innerText();
  const historyText = await page.locator('#history').innerText();
  const latencyRows = await page.$$eval('#latency-table tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => (td as HTMLElement).innerText.trim())));
  await context.close();
  return { charts, errors, offsite, telemetryText, speedupText, historyText, latencyRows };
}

describe('a real farm', () => {
  let sweepId = '';

  it('repeats the UNSURE comparison until it is decided, while sweep status --watch follows', async () => {
    const plan = planSweep(parseSweepText(SWEEP(pool, 'adaptive'), 'adaptive.yaml'));
    const submitted = await submitPlan(farm.db, farm.redis, plan, 'adaptive.yaml');
    sweepId = submitted.sweepId;
    expect(submitted.enqueued).toBe(2);
    const watch = cli(['sweep', 'status', sweepId, '--watch'], { DATABASE_URL: dbUrl }, { timeoutMs: 90_000 });

    const lines: string[] = [];
    const report = await untilConfident(farm.db, farm.redis, plan, { budget: 16, pollMs: 200, log: (l) => lines.push(l) });
    expect(report.stoppedBecause, `${lines.join('\n')}\n${JSON.stringify(report.comparison.rows, null, 1)}`).toBe('decided');
    expect(report.rounds.length).toBeGreaterThanOrEqual(1);
    expect(report.rounds[0]).toMatchObject({ round: 1, unsure: 1, addedRuns: 2 }); // one more run of each variant
    expect(report.extraRuns).toBeLessThanOrEqual(16);
    const fused = report.comparison.rows.find((r) => r.variant === 'fused')!;
    expect(fused.verdict).toBe('FASTER');
    expect(fused.ciLo!).toBeGreaterThan(1);
    expect(fused.runs).toBeGreaterThanOrEqual(2);

    // The extra repetitions are ordinary runs: rep >= repeat, the plan's id scheme, all done.
    const runs = await farm.db.run.findMany({ where: { sweepId }, orderBy: [{ rep: 'asc' }, { id: 'asc' }] });
    expect(runs).toHaveLength(2 + report.extraRuns);
    for (const r of runs) {
      expect(r.status).toBe('done');
      expect(r.id).toBe(`${sweepId}-${r.groupHash}-r${r.rep}`);
    }
    expect(runs.filter((r) => r.rep >= 1)).toHaveLength(report.extraRuns);

    const w = await watch;
    expect(w.exitCode, w.stderr).toBe(0);
    expect(w.stdout).toContain(`sweep ${sweepId} (adaptive)`);
    expect(w.stdout).toMatch(new RegExp(`${pool}\\s+\\[#+\\]\\s+\\d+/\\d+\\s+done \\d+\\s+running 0\\s+failed 0\\s+waiting 0`));

    const progress = await sweepProgress(farm.db, farm.redis, sweepId);
    expect(progress.finished).toBe(true);
    expect(progress.pools[0]).toMatchObject({ pool, total: runs.length, done: runs.length, failed: 0, running: 0, waiting: 0 });
    expect(renderProgress(progress)).toContain(`${runs.length}/${runs.length}`);
  }, 120_000);

  it('stops at the budget, and says what is still UNSURE', async () => {
    const plan = planSweep(parseSweepText(SWEEP(pool, 'no-budget'), 'nb.yaml'));
    await submitPlan(farm.db, farm.redis, plan, null);
    const report = await untilConfident(farm.db, farm.redis, plan, { budget: 0, pollMs: 200 });
    expect(report).toMatchObject({ stoppedBecause: 'budget', decided: false, extraRuns: 0 });
    expect(report.undecided).toHaveLength(1);
    expect(report.undecided[0]!.reason).toMatch(/fewer than 2 runs per variant/);
    const status = await cli(['sweep', 'status', plan.sweepId, '--json'], { DATABASE_URL: dbUrl });
    expect(JSON.parse(status.stdout)).toMatchObject({ sweepId: plan.sweepId, finished: true, pools: [{ pool, total: 2, done: 2 }] });
  }, 60_000);

  it('compares interleaved variants on their paired rounds, and says so', async () => {
    const yaml = SWEEP(pool, 'interleaved', 2).replace('repeat: 2', 'repeat: 2\ninterleave: true\nrounds: 4');
    const plan = planSweep(parseSweepText(yaml, 'il.yaml'));
    expect(plan.runs).toHaveLength(2); // one job per repetition holds both variants
    await submitPlan(farm.db, farm.redis, plan, null);
    const report = await untilConfident(farm.db, farm.redis, plan, { budget: 4, pollMs: 200 });
    const fused = report.comparison.rows.find((r) => r.variant === 'fused')!;
    expect(fused.mode).toBe('paired');
    expect(fused.rounds).toBeGreaterThanOrEqual(8); // 4 rounds x 2 repetitions, pooled
    expect(fused.verdict, fused.reason).toBe('FASTER');
    expect(fused.ciLo!).toBeGreaterThan(1);
    expect(fused.reason).toMatch(/^paired over \d+ rounds of \d+ interleaved run/);
    const { formatComparison } = await import('../../src/commands/results-compare.js');
    expect(formatComparison(report.comparison)).toMatch(/FASTER \(paired\)/);
  }, 60_000);

  it('writes a report that opens in Chromium with every chart, from a file and over HTTP', async () => {
    expect(sweepId).not.toBe('');
    const rep = await buildReportData(farm.db, sweepId);
    const file = join(dir, 'report.html');
    writeFileSync(file, renderReport(rep.data));
    const expected: ChartInfo[] = [
      { id: 'chart-speedup', kind: 'speedup', series: 1, points: [1] },
      { id: 'chart-box-0', kind: 'box', series: 2, points: [2, expect.any(Number) as unknown as number] },
    ];
    const fromFile = await openReport(pathToFileURL(file).href);
    expect(fromFile.errors).toEqual([]);
    expect(fromFile.offsite).toEqual([]);
    expect(fromFile.charts).toEqual(expected);
    expect(fromFile.telemetryText).toContain('No telemetry in this report.');
    expect(fromFile.speedupText).toMatch(/fused\s+reference\s+\d+\.\d+×\s+\[\d+\.\d+, \d+\.\d+\]\s+FASTER/);
    // One build: no lone-dot history chart, a sentence instead.
    expect(fromFile.historyText).toMatch(/Each point of this report has results from one build only \([0-9a-f]{8}/);
    // The latencies behind the speedup, as rendered: the baseline row and the fused row, in a unit (the CPU kernel: µs or ms).
    const cmp = rep.comparison.rows;
    expect(fromFile.latencyRows.map((r) => [r[1], r[5], r[9]])).toEqual(cmp.map((r) => [r.variant, String(r.runs), r.mode === 'paired' ? `${r.verdict} (paired)` : r.verdict]));
    for (const row of fromFile.latencyRows) expect(row.slice(2, 5).every((c) => /^\d+(\.\d+)? (µs|ms)$/.test(c)), row.join(' | ')).toBe(true);

    // The CLI writes the same report.
    const out = join(dir, 'cli.html');
    const r = await cli(['report', '--sweep', sweepId, '-o', out], { DATABASE_URL: dbUrl });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*cli\.html .*1 faster/);
    expect(readFileSync(out, 'utf8')).toContain('id="chart-speedup"');

    const http = await startHttpServer({ dbUrl, port: 0 });
    try {
      expect(http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const index = await fetch(`${http.url}/`);
      expect(index.status).toBe(200);
      expect(await index.text()).toContain(`/sweeps/${sweepId}/report`);
      const page = await fetch(`${http.url}/sweeps/${sweepId}/report`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(await page.text()).toContain('<canvas id="chart-speedup"');
      const json = (await (await fetch(`${http.url}/sweeps/${sweepId}/compare.json`)).json()) as { rows: Array<{ variant: string; verdict: string }> };
      expect(json.rows.find((x) => x.variant === 'fused')!.verdict).toBe('FASTER');
      expect((await fetch(`${http.url}/sweeps/nope/report`)).status).toBe(404);
      expect((await fetch(`${http.url}/elsewhere`)).status).toBe(404);
      expect((await fetch(`${http.url}/`, { method: 'POST' })).status).toBe(405);
      const served = await openReport(`${http.url}/sweeps/${sweepId}/report`);
      expect(served.errors).toEqual([]);
      expect(served.offsite).toEqual([]);
      expect(served.charts).toEqual(expected);
    } finally {
      await http.close();
    }
  }, 90_000);
});
