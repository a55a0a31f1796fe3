import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport } from '../../src/report/html.js';
import type { ReportDataInput } from '../../src/report/types.js';
import { launchChromium } from '../helpers/browser.js';
import { emptyReport, expectedCharts, fullReport } from './fixture.js';

/**
 * Opens rendered reports in real headless Chromium from a file:// URL and
 * checks what a reader would get: every chart drawn with the right number of
 * series and points, the axis type and unit Chart.js actually built, the
 * values in the latency and failure tables as rendered, no script errors,
 * and not a single non-file request.
 */

interface LiveChart {
  id: string;
  kind: string;
  series: number;
  points: number[];
  datasets: string[];
  scales: Record<string, { type: string; title: string; min: number; max: number }>;
}

/** The text of every cell of a table's body, row by row, as the browser renders it. */
async function tableCells(page: Page, selector: string): Promise<string[][]> {
  return page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => (td as HTMLElement).innerText.trim())));
}

const SCREENSHOT = '/tmp/moefarm-report.png';

let browser: Browser;
let dir: string;

beforeAll(async () => {
  browser = await launchChromium();
  dir = mkdtempSync(join(tmpdir(), 'moefarm-report-'));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Opened {
  page: Page;
  errors: string[];
  offFile: string[];
}

async function open(data: ReportDataInput, name: string): Promise<Opened> {
  const file = join(dir, name);
  writeFileSync(file, renderReport(data));
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const offFile: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (url.startsWith('file:')) return route.continue();
    offFile.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith('file:')) offFile.push(r.url());
  });
  await page.goto(pathToFileURL(file).href);
  await page.waitForFunction(() => document.body.dataset.ready === '1', undefined, { timeout: 20_000 });
  return { page, errors, offFile };
}

describe('report in Chromium', () => {
  it('draws every chart with the expected series and points, with no errors or network', async () => {
    const { page, errors, offFile } = await open(fullReport(), 'full.html');
    const charts = (await page.evaluate(() => (window as unknown as { __moefarmCharts: unknown }).__moefarmCharts)) as LiveChart[];
    const shape = (c: { id: string; kind: string; series: number; points: number[] }) => ({ id: c.id, kind: c.kind, series: c.series, points: c.points });
    expect(charts.map(shape)).toEqual(expectedCharts().map(shape));
    for (const e of expectedCharts().filter((x) => x.datasets)) expect(charts.find((c) => c.id === e.id)!.datasets, e.id).toEqual(e.datasets);

    // Axis types and units as Chart.js built them: a unit per chart, log where the values span decades, never below 0.
    const y = (id: string) => charts.find((c) => c.id === id)!.scales['y']!;
    expect(y('chart-box-0')).toMatchObject({ type: 'linear', title: 'latency (µs)' });
    expect(y('chart-box-0').min).toBeGreaterThanOrEqual(0);
    expect(y('chart-box-2')).toMatchObject({ type: 'logarithmic', title: 'latency (µs), log scale' });
    expect(y('chart-box-2').max / y('chart-box-2').min).toBeGreaterThan(1000);
    expect(y('chart-box-3')).toMatchObject({ type: 'linear', title: 'latency (s)' });
    expect(y('chart-box-3').min).toBeGreaterThan(3);
    expect(y('chart-box-3').max).toBeLessThan(7); // seconds: 4.5 s and its slow tail, not 4,500,000
    expect(y('chart-history-0')).toMatchObject({ type: 'linear', title: 'latency (µs): median, p10-p90 band' });
    expect(y('chart-history-1')).toMatchObject({ type: 'linear', title: 'latency (ms): median, p10-p90 band' });
    expect(y('chart-history-1').max).toBeLessThan(2.5);

    // The latency table: absolute values in a unit chosen per point, beside the speedup and verdict.
    expect(await tableCells(page, '#latency-table')).toEqual([
      ['T=1', 'separate', '42.0 µs', '40.1 µs', '44.9 µs', '3', '0', '1.00×', '', 'BASELINE'],
      ['T=1', 'fused', '36.0 µs', '34.5 µs', '38.8 µs', '3', '1', '1.17×', 'separate', 'FASTER'],
      ['T=512', 'reference', '4.50 s', '4.31 s', '4.77 s', '2', '0', '', 'separate', 'NO-BASELINE'],
      ['tiny T=1', 'fused', '312 ns', '301 ns', '348 ns', '5', '0', '0.910×', 'separate', 'SLOWER (paired)'],
    ]);
    // Failures: run id, outcome and reason, and how many more there are.
    expect(await tableCells(page, '#failure-table')).toEqual([
      ['s01-abc-r0', 'crashed', 'qwen3-30b-a3b T=64 bf16 persistent', 'h1/h100/gpu0', 'the binary crashed (exit code 3): CUDA error: an illegal memory access'],
      ['s01-abd-r1', 'timeout', 'qwen3-30b-a3b T=512 bf16 persistent', '', "killed after the job's timeout of 60 s"],
    ]);
    expect(await page.locator('#failures').innerText()).toContain('and 3 more');

    // Every canvas on the page is a chart, and each has ink on it.
    const inked = await page.evaluate(() =>
      Array.from(document.querySelectorAll('canvas')).map((c) => {
        const img = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? new Uint8ClampedArray();
        let n = 0;
        for (let i = 3; i < img.length; i += 4) if ((img[i] ?? 0) > 0) n++;
        return { id: c.id, kind: c.dataset.chart, inked: n };
      }),
    );
    expect(inked.map((c) => c.id)).toEqual(expectedCharts().map((c) => c.id));
    for (const c of inked) expect(c.inked, c.id).toBeGreaterThan(2000);

    // The hostile sweep name is shown as text and executed nothing.
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('header').innerText()).toContain('</script><script>window.__pwned=2</script>');
    expect(await page.locator('#telemetry').innerText()).toContain('cpu run (run_3): no telemetry readings.');

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    expect(offFile).toEqual([]);
    await page.context().close();
  }, 60_000);

  it('renders an empty report as "no data" paragraphs without errors', async () => {
    const { page, errors, offFile } = await open(emptyReport(), 'empty.html');
    expect(await page.evaluate(() => (window as unknown as { __moefarmCharts: unknown }).__moefarmCharts)).toEqual([]);
    expect(await page.locator('p.nodata').count()).toBe(7);
    expect(errors).toEqual([]);
    expect(offFile).toEqual([]);
    await page.context().close();
  }, 60_000);
});
