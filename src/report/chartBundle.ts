import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The Chart.js UMD bundle (defines window.Chart), inlined into every report so
 * it opens offline. chart.js's package "exports" does not expose dist/ files,
 * so resolve the package entry (dist/chart.cjs) and take its sibling.
 */
let cached: string | undefined;

export function chartJsSource(): string {
  if (cached === undefined) {
    const entry = createRequire(import.meta.url).resolve('chart.js');
    const path = join(dirname(entry), 'chart.umd.js');
    try {
      cached = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`report: cannot read the Chart.js bundle at ${path}; is chart.js 4 installed? (${String(err)})`);
    }
  }
  return cached;
}
