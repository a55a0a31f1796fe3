/**
 * No module of the coordinator (src/) or the worker (worker/) imports itself
 * through others: a circle makes "which room owns this" unanswerable and
 * leaves half-initialised modules at start-up. Every import counts, type-only
 * and lazy ones included (the file list and the imports are read with
 * TypeScript's own pre-processor).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/services.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every import circle, each as the list of files around it (first file repeated at the end). */
function importCircles(files: string[]): string[][] {
  const known = new Set(files);
  const graph = new Map(
    files.map((f) => [
      f,
      ts
        .preProcessFile(readFileSync(f, 'utf8'), true, true)
        .importedFiles.map((i) => i.fileName)
        .filter((n) => n.startsWith('.'))
        .map((n) => resolve(dirname(f), n.replace(/\.js$/, '.ts')))
        .filter((n) => known.has(n)),
    ]),
  );
  const circles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    path.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') circles.push([...path.slice(path.indexOf(d)), d].map((p) => relative(ROOT, p)));
      else if (!state.has(d)) visit(d);
    }
    path.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  return circles;
}

describe('imports', () => {
  it('form no circle in src/ and worker/', () => {
    const files = [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'worker'))];
    expect(files.length).toBeGreaterThan(50);
    expect(importCircles(files).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('names a circle when there is one', () => {
    const t = tempDir('imports');
    try {
      const a = join(t.dir, 'a.ts');
      const b = join(t.dir, 'b.ts');
      const c = join(t.dir, 'c.ts');
      writeFileSync(a, "import type { B } from './b.js';\nexport type A = B;\n");
      writeFileSync(b, "export type B = number;\nexport const load = () => import('./c.js');\n");
      writeFileSync(c, "export { load } from './b.js';\n");
      expect(importCircles([a, b, c]).map((circle) => circle.map((p) => p.split('/').at(-1)))).toEqual([['b.ts', 'c.ts', 'b.ts']]);
    } finally {
      t.cleanup();
    }
  });
});
