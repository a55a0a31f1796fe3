import { chartJsSource } from './chartBundle.js';
import { boxSpecs, historySpecs, speedupSpec, telemetrySpec } from './chartSpecs.js';
import type { ChartSpec } from './chartSpecs.js';
import { CLIENT_SCRIPT } from './clientScript.js';
import { escapeHtml, jsonForScript, scriptSafe } from './escape.js';
import { REPORT_CSS } from './styles.js';
import { ReportDataSchema } from './types.js';
import type { ReportData, ReportDataInput, SpeedupRow } from './types.js';
import { chooseUnit, formatLatency, formatNumber } from './units.js';

/**
 * One self-contained HTML file: styles, the Chart.js bundle, the chart data
 * and the page script are all inline, and a Content-Security-Policy forbids
 * the page from loading anything else, so a report opens the same from an
 * email attachment on a machine without network as from the farm's server.
 *
 * Throws a ZodError (with the path of the bad field) if `input` is malformed.
 */
export function renderReport(input: ReportDataInput): string {
  const data = ReportDataSchema.parse(input);
  const charts: ChartSpec[] = [];
  const body = [
    header(data),
    notesSection(data),
    latencySection(data),
    speedupSection(data, charts),
    distributionSection(data, charts),
    failureSection(data),
    telemetrySection(data, charts),
    historySection(data, charts),
  ].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(data.title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
${body}
<script type="application/json" id="moefarm-charts">${jsonForScript(charts)}</script>
<script>${scriptSafe(chartJsSource())}</script>
<script>${scriptSafe(CLIENT_SCRIPT)}</script>
</body>
</html>
`;
}

const noData = (what: string): string => `<p class="nodata">No ${escapeHtml(what)} in this report.</p>`;

function canvas(spec: ChartSpec, heightPx: number, label: string): string {
  return `<div class="chart" style="height:${Math.round(heightPx)}px"><canvas id="${spec.id}" data-chart="${spec.kind}" role="img" aria-label="${escapeHtml(label)}"></canvas></div>`;
}

function header(data: ReportData): string {
  const sweep = data.sweep
    ? ` · sweep <strong>${escapeHtml(data.sweep.name)}</strong> <code>${escapeHtml(data.sweep.id)}</code>`
    : '';
  return `<header><h1>${escapeHtml(data.title)}</h1><p class="meta">Generated ${escapeHtml(data.generatedAt)}${sweep}</p></header>`;
}

function notesSection(data: ReportData): string {
  const body =
    data.notes.length === 0
      ? noData('notes')
      : `<ul class="notes">${data.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`;
  return `<section id="notes"><h2>Notes</h2>${body}</section>`;
}

/**
 * The numbers behind the speedups: per point, build and variant, the median, p10 and p90 of all raw
 * samples, runs used and left out, and the verdict. Each point's rows share one unit, chosen from their
 * medians, so they compare at a glance; the cell keeps the exact µs value in data-us.
 */
function latencySection(data: ReportData): string {
  if (data.latencies.length === 0) return `<section id="latencies"><h2>Latencies</h2>${noData('latencies')}</section>`;
  const unitOf = new Map<string, ReturnType<typeof chooseUnit>>();
  for (const g of new Set(data.latencies.map((r) => r.group))) unitOf.set(g, chooseUnit(data.latencies.filter((r) => r.group === g).map((r) => r.medianUs)));
  const lat = (us: number, group: string) => `<td class="num" data-us="${us}">${escapeHtml(formatLatency(us, unitOf.get(group)!))}</td>`;
  // Energy beside time where the GPU's counter gave any (CUDA with NVML); "-" for a row without it.
  const energy = data.latencies.some((r) => typeof r.joulesPerForward === 'number');
  const num = (x: number | null | undefined, scale: number) => `<td class="num">${typeof x === 'number' ? escapeHtml(formatNumber(x * scale)) : '-'}</td>`;
  const rows = data.latencies.map(
    (r) =>
      `<tr><td>${escapeHtml(r.group)}</td><td>${escapeHtml(r.variant)}</td>${lat(r.medianUs, r.group)}${lat(r.p10Us, r.group)}${lat(r.p90Us, r.group)}` +
      (energy ? num(r.joulesPerForward, 1000) + num(r.meanPowerW, 1) : '') +
      `<td class="num">${r.runs}</td><td class="num">${r.excluded}</td><td class="num">${r.speedup === null ? '' : `${formatNumber(r.speedup)}×`}</td>` +
      `<td>${escapeHtml(r.baseline)}</td><td><span class="verdict verdict-${escapeHtml(r.verdict.split(' ')[0]!)}">${escapeHtml(r.verdict)}</span></td></tr>`,
  );
  return `<section id="latencies"><h2>Latencies</h2>
<p class="hint">All raw samples of all runs of each point, build and variant; flagged runs left out are counted under "excluded". Units are chosen per point.</p>
<table id="latency-table"><thead><tr><th>point</th><th>variant</th><th>median</th><th>p10</th><th>p90</th>${energy ? '<th>energy/forward (mJ)</th><th>mean power (W)</th>' : ''}<th>runs</th><th>excluded</th><th>speedup</th><th>against</th><th>verdict</th></tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}

/** Every run that ended without a result: its id, outcome and reason (the reason is what a reader acts on). */
function failureSection(data: ReportData): string {
  if (data.failuresTotal === 0) return `<section id="failures"><h2>Runs without a result</h2><p class="nodata">Every run of this sweep that ended has a result.</p></section>`;
  const rows = data.failures.map(
    (f) =>
      `<tr><td><code>${escapeHtml(f.runId)}</code></td><td><span class="outcome">${escapeHtml(f.status)}</span></td><td>${escapeHtml(f.point)}</td>` +
      `<td>${escapeHtml(f.worker ?? '')}</td><td class="reason">${escapeHtml(f.reason ?? '')}</td></tr>`,
  );
  const more = data.failuresTotal > data.failures.length ? `<p class="hint">and ${data.failuresTotal - data.failures.length} more (moefarm results list --sweep ID --status OUTCOME lists them all).</p>` : '';
  return `<section id="failures"><h2>Runs without a result</h2>
<p class="hint">${data.failuresTotal} run(s) ended without a result; moefarm sweep retry runs them again.</p>
<table id="failure-table"><thead><tr><th>run</th><th>outcome</th><th>point</th><th>worker</th><th>reason</th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}</section>`;
}

function speedupSection(data: ReportData, charts: ChartSpec[]): string {
  const spec = speedupSpec(data);
  if (spec === null) return `<section id="speedups"><h2>Speedups</h2>${noData('speedups')}</section>`;
  charts.push(spec);
  return `<section id="speedups"><h2>Speedups</h2>
<p class="hint">Speedup = baseline latency / variant latency (&gt; 1: the variant is faster). The dashed line marks 1.0.</p>
${canvas(spec, 90 + 30 * spec.labels.length, 'speedup of each variant over its baseline with confidence intervals')}
${speedupTable(data.speedups)}</section>`;
}

function speedupTable(rows: SpeedupRow[]): string {
  const f = (x: number): string => x.toFixed(3);
  const tr = rows.map(
    (r) =>
      `<tr><td>${escapeHtml(r.group)}</td><td>${escapeHtml(r.variant)}</td><td>${escapeHtml(r.baseline)}</td>` +
      `<td class="num">${f(r.speedup)}×</td><td class="num">[${f(r.lo)}, ${f(r.hi)}]</td>` +
      `<td><span class="verdict verdict-${escapeHtml(r.verdict)}">${escapeHtml(r.verdict)}</span></td></tr>`,
  );
  return `<table><thead><tr><th>group</th><th>variant</th><th>baseline</th><th>speedup</th><th>CI</th><th>verdict</th></tr></thead><tbody>${tr.join('')}</tbody></table>`;
}

function distributionSection(data: ReportData, charts: ChartSpec[]): string {
  const specs = boxSpecs(data);
  if (specs.length === 0) {
    return `<section id="distributions"><h2>Latency distributions</h2>${noData('latency samples')}</section>`;
  }
  charts.push(...specs);
  const cells = specs.map((s) => canvas(s, 340, `latency distribution per variant: ${s.title}`));
  return `<section id="distributions"><h2>Latency distributions</h2>
<p class="hint">Box: p25 to p75; thick line: median; whiskers: furthest sample within 1.5 IQR of the box; dots: outliers beyond. Each chart has its own unit; an axis is logarithmic where its values span more than a decade.</p>
<div class="grid">${cells.join('\n')}</div></section>`;
}

function telemetrySection(data: ReportData, charts: ChartSpec[]): string {
  if (data.telemetry.length === 0) {
    return `<section id="telemetry"><h2>Telemetry</h2>${noData('telemetry')}</section>`;
  }
  const cells = data.telemetry.map((run, i) => {
    const spec = telemetrySpec(run, i);
    if (spec === null) {
      return `<div class="chart"><p class="nodata">${escapeHtml(run.label)} (${escapeHtml(run.runId)}): no telemetry readings.</p></div>`;
    }
    charts.push(spec);
    return canvas(spec, 300, `SM clock, power and temperature during ${run.label}`);
  });
  return `<section id="telemetry"><h2>Telemetry</h2><div class="grid">${cells.join('\n')}</div></section>`;
}

function historySection(data: ReportData, charts: ChartSpec[]): string {
  const specs = historySpecs(data);
  if (specs.length === 0) {
    if (data.history.length === 0) return `<section id="history"><h2>History</h2>${noData('history')}</section>`;
    // A lone dot per point says nothing: say why there is no chart instead.
    const builds = [...new Set(data.history.flatMap((h) => h.builds))];
    return `<section id="history"><h2>History</h2><p class="nodata" id="history-one-build">Each point of this report has results from one build only (${escapeHtml(builds.join(', '))}), so there is no history to draw: a history chart appears once a point has been measured with two builds or more (another commit, or <code>builds:</code> in the sweep file).</p></section>`;
  }
  charts.push(...specs);
  const cells = specs.map((s) => canvas(s, 300, `median latency per build with its p10-p90 band: ${s.title}`));
  return `<section id="history"><h2>History</h2>
<p class="hint">Median latency of each variant per build, in build order, with the p10-p90 band of its samples; a triangle marks a detected step (up: REGRESSION, down: IMPROVEMENT). Each y axis spans at least 10% of the level, so noise between builds does not look like a step.</p>
<div class="grid">${cells.join('\n')}</div></section>`;
}
