import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { escapeHtml, jsonForScript } from '../../src/report/escape.js';
import { renderReport } from '../../src/report/html.js';
import { HOSTILE_NAME, emptyReport, fullReport, history } from './fixture.js';

function chartJson(html: string): unknown {
  const m = /<script type="application\/json" id="moefarm-charts">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m?.[1] ?? 'null');
}

describe('renderReport (string level)', () => {
  it('shows energy per forward and mean power beside time when a row has them, "-" where a row has none, and no such columns otherwise', () => {
    const plain = renderReport(fullReport());
    expect(plain.includes('energy/forward (mJ)')).toBe(false);
    const data = fullReport();
    const [first, second, ...rest] = data.latencies ?? [];
    const html = renderReport({ ...data, latencies: [{ ...first!, joulesPerForward: 0.0421, meanPowerW: 132.5 }, { ...second!, joulesPerForward: null, meanPowerW: null }, ...rest] });
    const table = /<table id="latency-table">[\s\S]*?<\/table>/.exec(html)?.[0] ?? '';
    expect(table.includes('<th>energy/forward (mJ)</th><th>mean power (W)</th>')).toBe(true);
    const rows = table.split('<tr>').slice(2);
    expect(rows[0]!.includes('<td class="num">42.1</td><td class="num">133</td>')).toBe(true);
    expect(rows[1]!.includes('<td class="num">-</td><td class="num">-</td>')).toBe(true);
  });

  it('escapes user text in HTML and in the JSON block', () => {
    const html = renderReport(fullReport());
    // Booleans, not toContain: a failure would otherwise print 200 kB of HTML.
    expect(html.includes(HOSTILE_NAME)).toBe(false);
    expect(html.includes(escapeHtml(HOSTILE_NAME))).toBe(true);
    expect(html.includes('a note with &lt;b&gt;markup&lt;/b&gt; &amp; ampersands')).toBe(true);
    // Exactly the three script elements we put there, however hostile the data.
    expect(html.match(/<script/g)).toHaveLength(3);
    expect(jsonForScript('</script><!--')).toBe('"\\u003c/script>\\u003c!--"');
    expect(JSON.parse(jsonForScript({ s: '</script>' }))).toEqual({ s: '</script>' });
  });

  it('references nothing outside the file', () => {
    const html = renderReport(fullReport());
    // Markup outside the inline scripts: no tag may point anywhere (escaped user text has no raw "<").
    const markup = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, '');
    expect(markup.match(/<[a-z][^>]*\s(?:src|href|action|srcset)\s*=/gi)).toBeNull();
    expect(/<style>[^<]*url\(/i.test(html)).toBe(false);
    expect(html.includes("default-src 'none'")).toBe(true);
    expect(/Chart\.js v4/.test(html)).toBe(true); // the bundle is inline
  });

  it('embeds chart specs with box numbers and drops all-null metrics', () => {
    const specs = chartJson(renderReport(fullReport())) as Array<{ id: string; kind: string; metrics?: Array<{ key: string }> }>;
    expect(specs.map((s) => s.id)).toEqual([
      'chart-speedup',
      'chart-box-0',
      'chart-box-1',
      'chart-box-2',
      'chart-box-3',
      'chart-telemetry-0',
      'chart-telemetry-1',
      'chart-history-0',
      'chart-history-1',
    ]);
    expect(specs.find((s) => s.id === 'chart-telemetry-1')?.metrics?.map((m) => m.key)).toEqual(['sm_mhz', 'power_w']);
  });

  it('renders "no data" paragraphs and no canvases for an empty report', () => {
    const html = renderReport(emptyReport());
    expect(html.includes('<canvas')).toBe(false);
    for (const what of ['notes', 'latencies', 'speedups', 'latency samples', 'telemetry', 'history']) {
      expect(html.includes(`No ${what} in this report.`), what).toBe(true);
    }
    expect(chartJson(html)).toEqual([]);
  });

  it('draws no lone-dot history: a report whose points each have one build says so in a sentence', () => {
    const one = fullReport();
    one.history = [history('qwen3 T=1', 'fused', ['a1b2c3d4'], [36]), history('qwen3 T=1', 'separate', ['a1b2c3d4'], [42])];
    const html = renderReport(one);
    expect((chartJson(html) as Array<{ kind: string }>).filter((c) => c.kind === 'history')).toEqual([]);
    expect(html.includes('<p class="nodata" id="history-one-build">Each point of this report has results from one build only (a1b2c3d4), so there is no history to draw')).toBe(true);
  });

  it('picks each chart\'s unit and scale from its values', () => {
    const specs = chartJson(renderReport(fullReport())) as Array<{ id: string; unit?: string; scale?: string; boxes?: Array<{ median: number }> }>;
    const box = (id: string) => specs.find((s) => s.id === id)!;
    expect([box('chart-box-0').unit, box('chart-box-0').scale]).toEqual(['µs', 'linear']);
    expect([box('chart-box-2').unit, box('chart-box-2').scale]).toEqual(['µs', 'logarithmic']);
    expect([box('chart-box-3').unit, box('chart-box-3').scale]).toEqual(['s', 'linear']);
    expect(box('chart-box-3').boxes![0]!.median).toBeCloseTo(4.5, 1); // seconds, not 4,500,000
  });

  it('rejects malformed data with the path of the bad field', () => {
    const bad = fullReport();
    const run = bad.telemetry[0];
    if (run) run.power_w = [1, 2];
    expect(() => renderReport(bad)).toThrow(ZodError);
    expect(() => renderReport(bad)).toThrow(/power_w/);
    const nan = fullReport();
    const row = nan.speedups[0];
    if (row) row.speedup = Number.NaN;
    expect(() => renderReport(nan)).toThrow(ZodError);
  });
});
