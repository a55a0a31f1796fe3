import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { renderReport } from '../report/html.js';
import { parseBaseline } from '../results/compare.js';
import { buildReportData } from '../results/report-data.js';
import { withDb } from './context.js';

export interface ReportCommandOptions {
  sweep: string;
  output?: string;
  baseline?: string;
  includeFlagged?: boolean;
  /** Comma list of run ids whose telemetry to draw. */
  telemetryRuns?: string;
  /** --clock-band: width of the SM clock bands, MHz (ReportOptions.smClockBandMhz). */
  clockBand?: number;
}

export async function reportCommand(opts: ReportCommandOptions): Promise<void> {
  const baseline = parseBaseline(opts.baseline);
  const report = await withDb((db) =>
    buildReportData(db, opts.sweep, {
      baseline,
      includeFlagged: opts.includeFlagged ?? false,
      ...(opts.telemetryRuns ? { telemetryRuns: opts.telemetryRuns.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      ...(opts.clockBand === undefined ? {} : { smClockBandMhz: opts.clockBand }),
    }),
    { mustExist: true },
  );
  const html = renderReport(report.data);
  if (opts.output === '-') {
    process.stdout.write(html);
    return;
  }
  const file = resolve(opts.output ?? `moefarm-report-${opts.sweep}.html`);
  writeFileSync(file, html);
  const verdicts = report.comparison.rows.filter((r) => r.verdict !== 'BASELINE').map((r) => r.verdict);
  const count = (v: string) => verdicts.filter((x) => x === v).length;
  process.stdout.write(
    `wrote ${file} (${(html.length / 1024).toFixed(0)} KiB): ${report.data.distributions.length} groups, ` +
      `${count('FASTER')} faster, ${count('SLOWER')} slower, ${count('SAME')} same, ${count('UNSURE')} unsure\n`,
  );
}
