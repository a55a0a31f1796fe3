import { annotateStep, checkNote, type AnnotateReport } from '../results/annotations.js';
import { withDb } from './context.js';

export interface ResultsAnnotateOptions {
  build: string;
  point: string;
  as?: 'expected' | 'invalid';
  note?: string;
  clear?: boolean;
  json?: boolean;
}

export async function resultsAnnotate(opts: ResultsAnnotateOptions): Promise<void> {
  // A missing or unusable note is refused before the database is opened.
  checkNote(opts.note, opts.clear ? 'clear' : opts.as!);
  const report = await withDb((db) =>
    annotateStep(db, { build: opts.build, point: opts.point, kind: opts.clear ? 'clear' : opts.as!, ...(opts.note !== undefined ? { note: opts.note } : {}) }),
  );
  process.stdout.write((opts.json ? JSON.stringify(report) : formatAnnotate(report)) + '\n');
}

function formatAnnotate(r: AnnotateReport): string {
  const step = `the step into build ${r.sourceHash.slice(0, 12)}${r.gitCommit ? ` (commit ${r.gitCommit.slice(0, 10)})` : ''} at point ${r.pointHash} (${r.variant})`;
  const was = r.previous ? ` (was ${r.previous.kind}: ${r.previous.note})` : '';
  switch (r.action) {
    case 'cleared':
      return `cleared the annotation of ${step}${was}`;
    case 'nothing-to-clear':
      return `${step} has no annotation; nothing cleared`;
    default:
      return `${r.action} ${step} as ${r.kind}: ${r.note}${was}\nresults history, the report, moefarm check and alerts now honour it`;
  }
}
