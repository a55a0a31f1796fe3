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
 * series and points, no script errors, and not a single non-file request.
 */

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
    const charts = await page.evaluate(() => (window as unknown as { __moefarmCharts: unknown }).__moefarmCharts);
    expect(charts).toEqual(expectedCharts());

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
    expect(await page.locator('p.nodata').count()).toBe(5);
    expect(errors).toEqual([]);
    expect(offFile).toEqual([]);
    await page.context().close();
  }, 60_000);
});
