/**
 * The gate's summary as GitHub-flavoured markdown (`moefarm check
 * --markdown FILE`), for a CI job summary or a pull-request comment: the
 * outcome in the first line, a table of points with speedups, intervals and
 * verdicts, the environment, the builds compared, and where the HTML report
 * is. Latencies use the report's units (report/units.ts); every cell that
 * holds text from a sweep or a note is escaped, so a `|` or `<` cannot break
 * the table or inject markup.
 */
import type { Db } from '../db/client.js';
import { chooseUnit, formatLatency } from '../report/units.js';
import { armLabel } from './load.js';
import { fmtP, type Comparison } from './compare.js';
import type { GateResult, GateRow } from './gate.js';

export interface SweepBuild {
  name: string;
  label: string;
  sourceHash: string | null;
  gitCommit: string | null;
  dirty: boolean;
}

/** The builds a sweep compared, as its submit resolved them, with what BuildSource knows of each. */
export async function loadSweepBuilds(db: Db, sweepId: string): Promise<SweepBuild[]> {
  const sweep = await db.sweep.findUnique({ where: { id: sweepId }, select: { spec: true } });
  let resolved: Array<{ name: string; source: string; label?: string }> = [];
  try {
    resolved = (JSON.parse(sweep?.spec ?? '{}') as { resolvedBuilds?: typeof resolved }).resolvedBuilds ?? [];
  } catch {
    /* an unplanned sweep: no builds to name */
  }
  const hashes = resolved.map((b) => b.source).filter((h) => h !== 'worker');
  const sources = new Map((hashes.length ? await db.buildSource.findMany({ where: { hash: { in: hashes } } }) : []).map((s) => [s.hash, s]));
  return resolved.map((b) => {
    const s = sources.get(b.source);
    return { name: b.name, label: b.label ?? `build ${b.name}`, sourceHash: b.source === 'worker' ? null : b.source, gitCommit: s?.gitCommit ?? null, dirty: s?.dirty ?? false };
  });
}

/** Text safe inside a markdown table cell: no row or cell break, no HTML. */
export function mdCell(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')
    .replace(/`/g, "'");
}

export interface MarkdownOptions {
  builds: SweepBuild[];
  /** Where the HTML report is: a URL or a file, said as given; null: the command that writes one. */
  report: string | null;
}

const OUTCOME_WORD: Record<GateRow['outcome'], string> = { fail: '**fail**', pass: 'pass', unsure: 'unsure', annotated: 'annotated', baseline: '' };

export function formatGateMarkdown(gate: GateResult, cmp: Comparison, opts: MarkdownOptions): string {
  const lines: string[] = [];
  const head = gate.passed
    ? `### moefarm check passed: no confirmed regression beyond ${gate.thresholdPct}%`
    : `### moefarm check FAILED: ${gate.reasons.join('; ')}`;
  lines.push(mdLine(head), '');
  const baseline = cmp.baselineBy === 'build' ? `baseline build \`${mdCell(cmp.baseline)}\` (each variant against the same variant of it)` : `baseline variant \`${mdCell(cmp.baseline)}\``;
  lines.push(
    `Sweep \`${gate.sweepId}\` (${mdCell(gate.name)}), ${baseline}. Speedup = baseline median / median (above 1: faster). ` +
      `A SLOWER verdict fails the check when the latency grew by more than ${gate.thresholdPct}%; UNSURE ${gate.unsure === 'pass' ? 'passes (`--unsure pass`, the default)' : 'fails (`--unsure fail`)'}.`,
    '',
  );
  const envs = [...new Set(gate.rows.map((r) => r.row.env))];
  const multiBuild = cmp.builds.length > 1;
  const unit = chooseUnit(gate.rows.map((r) => r.row.medianUs));
  const baseMedian = (g: GateRow): number | null => {
    const r = g.row;
    const b = cmp.rows.find((x) => x.verdict === 'BASELINE' && x.point === r.point && x.env === r.env && (cmp.baselineBy === 'build' ? x.variant === r.variant : x.build === r.build));
    return b ? b.medianUs : null;
  };
  const header = ['point', ...(envs.length > 1 ? ['environment'] : []), multiBuild ? 'build / variant' : 'variant', 'median', 'baseline median', 'speedup', '95% CI', 'p', 'verdict', 'check'];
  lines.push(`| ${header.join(' | ')} |`);
  lines.push(`| ${header.map((h) => (['median', 'baseline median', 'speedup', 'p'].includes(h) ? '--:' : '---')).join(' | ')} |`);
  for (const g of gate.rows.filter((x) => x.outcome !== 'baseline')) {
    const r = g.row;
    const bm = baseMedian(g);
    const cells = [
      mdCell(r.point),
      ...(envs.length > 1 ? [mdCell(r.env)] : []),
      mdCell(armLabel(r.build, r.variant, cmp.builds)),
      r.runs > 0 ? formatLatency(r.medianUs, unit) : '',
      bm === null ? '' : formatLatency(bm, unit),
      r.speedup === null ? '' : r.speedup.toFixed(3),
      r.ciLo === null || r.ciHi === null ? '' : `[${r.ciLo.toFixed(3)}, ${r.ciHi.toFixed(3)}]`,
      r.p === null ? '' : fmtP(r.p),
      r.verdict + (r.mode === 'paired' ? ' (paired)' : ''),
      `${OUTCOME_WORD[g.outcome]}${g.outcome === 'pass' && !g.why.startsWith('slower') ? '' : `: ${mdCell(g.why)}`}`,
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  if (!gate.rows.some((x) => x.outcome !== 'baseline')) lines.push(`| ${header.map((_, i) => (i === 0 ? 'no comparison' : '')).join(' | ')} |`);
  lines.push('');
  for (const n of [...gate.notes]) lines.push(`- ${mdLine(n)}`);
  const failed = Object.entries(gate.failures);
  if (failed.length) lines.push(`- Runs without a result: ${failed.map(([k, v]) => `${mdCell(k)} ${v}`).join(', ')} (\`moefarm results list --sweep ${gate.sweepId} --status ${mdCell(failed[0]![0])}\` says why)`);
  if (gate.notes.length || failed.length) lines.push('');
  lines.push(`**Environment:** ${envs.length === 1 ? mdCell(envs[0]!) : envs.length === 0 ? 'no run measured' : `${envs.length} groups (see the table)`}`, '');
  if (opts.builds.length) {
    lines.push('**Builds:**');
    for (const b of opts.builds) {
      const src = b.sourceHash === null ? "each worker's own checkout" : `source \`${b.sourceHash.slice(0, 12)}\``;
      const commit = b.gitCommit ? `, commit \`${b.gitCommit.slice(0, 10)}\`${b.dirty ? ' + uncommitted edits' : ''}` : '';
      lines.push(`- \`${mdCell(b.name)}\` (${mdCell(b.label.replace(/^build \S+ \(|\)$/g, ''))}): ${src}${commit}`);
    }
    lines.push('');
  }
  lines.push(
    `**HTML report:** ${opts.report ? mdCell(opts.report) : `\`moefarm report --sweep ${gate.sweepId} -o report.html\``} (latency distributions, every run, history across builds)`,
    '',
  );
  lines.push('<details><summary>How verdicts are decided</summary>', '', mdLine(cmp.thresholds.text), '', '</details>', '');
  return lines.join('\n');
}

/** A line of markdown text from program output: no HTML. */
function mdLine(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
