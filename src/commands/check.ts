import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ExitError } from '../errors.js';
import { compareSweep, parseBaseline } from '../results/compare.js';
import { evaluateGate, gateAnnotations, type GateResult, type UnsurePolicy } from '../results/gate.js';
import { armLabel, loadSweepResults } from '../results/load.js';
import { formatGateMarkdown, loadSweepBuilds } from '../results/markdown.js';
import { renderTable, type Cell } from '../util/table.js';
import { withDb } from './context.js';

export interface CheckOptions {
  sweep: string;
  /** Slowdown (%) a SLOWER must exceed to fail. */
  threshold: number;
  unsure: UnsurePolicy;
  /** Write the markdown summary here ('-': stdout instead of the table). */
  markdown?: string;
  /** Also write the sweep's HTML report here, and name it in the summary. */
  report?: string;
  /** Where the HTML report can be read (a CI artifact, moefarm serve --http): named in the summary. */
  reportUrl?: string;
  baseline?: string;
  json?: boolean;
}

export async function check(opts: CheckOptions): Promise<void> {
  const baseline = parseBaseline(opts.baseline);
  const { gate, markdown, reportFile } = await withDb(async (db) => {
    const results = await loadSweepResults(db, opts.sweep);
    const cmp = compareSweep(results, baseline);
    const gate = evaluateGate(results, cmp, await gateAnnotations(db, results), { thresholdPct: opts.threshold, unsure: opts.unsure });
    let reportFile: string | null = null;
    if (opts.report !== undefined) {
      const [{ buildReportData }, { renderReport }] = await Promise.all([import('../results/report-data.js'), import('../report/html.js')]);
      reportFile = resolve(opts.report);
      writeFileSync(reportFile, renderReport((await buildReportData(db, opts.sweep, { baseline })).data));
    }
    const markdown =
      opts.markdown === undefined
        ? null
        : formatGateMarkdown(gate, cmp, { builds: await loadSweepBuilds(db, opts.sweep), report: opts.reportUrl ?? (opts.report !== undefined ? opts.report : null) });
    return { gate, markdown, reportFile };
  });
  if (markdown !== null && opts.markdown !== '-') writeFileSync(resolve(opts.markdown!), markdown);
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...gate, rows: gate.rows.map(({ row, ...g }) => ({ ...g, point: row.point, env: row.env, build: row.build, variant: row.variant, verdict: row.verdict, mode: row.mode, speedup: row.speedup, ciLo: row.ciLo, ciHi: row.ciHi, p: row.p, medianUs: row.medianUs, reason: row.reason })), markdown: opts.markdown ?? null, report: reportFile }) + '\n');
  } else if (opts.markdown === '-') {
    process.stdout.write(markdown!);
  } else {
    process.stdout.write(formatGate(gate, reportFile, opts.markdown ?? null) + '\n');
  }
  if (!gate.passed) throw new ExitError(`check failed: ${gate.reasons.join('; ')}`, 1);
}

export function formatGate(gate: GateResult, reportFile: string | null, markdownFile: string | null): string {
  const builds = [...new Set(gate.rows.map((r) => r.row.build))];
  const envs = new Set(gate.rows.map((r) => r.row.env));
  const rows = gate.rows
    .filter((r) => r.outcome !== 'baseline')
    .map((g): Cell[] => [
      g.row.point,
      ...(envs.size > 1 ? [g.row.env] : []),
      armLabel(g.row.build, g.row.variant, builds),
      g.row.speedup === null ? null : Number(g.row.speedup.toFixed(3)),
      g.row.ciLo === null || g.row.ciHi === null ? '' : `[${g.row.ciLo.toFixed(3)}, ${g.row.ciHi.toFixed(3)}]`,
      g.row.verdict + (g.row.mode === 'paired' ? ' (paired)' : ''),
      g.outcome === 'baseline' ? '' : g.outcome.toUpperCase(),
      g.why,
    ]);
  const lines = [
    `check of sweep ${gate.sweepId} (${gate.name}): fails on SLOWER by more than ${gate.thresholdPct}%; UNSURE ${gate.unsure === 'pass' ? 'passes (--unsure pass, the default)' : 'fails (--unsure fail)'}`,
    renderTable(['point', ...(envs.size > 1 ? ['env'] : []), builds.length > 1 ? 'build variant' : 'variant', 'speedup', 'ci95', 'verdict', 'check', 'why'], rows),
    ...gate.notes,
    ...(markdownFile ? [`markdown summary: ${markdownFile}`] : []),
    ...(reportFile ? [`HTML report: ${reportFile}`] : []),
    gate.passed ? `check: passed (no confirmed regression beyond ${gate.thresholdPct}%)` : `check: FAILED: ${gate.reasons.join('; ')}`,
  ];
  return lines.join('\n');
}
