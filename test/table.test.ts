import { describe, expect, it } from 'vitest';
import { csvLines, renderCsv, renderTable } from '../src/util/table.js';

describe('terminal tables and CSV', () => {
  it('prints numbers with four significant digits and never in exponent form', () => {
    const t = renderTable(['x'], [[32049.7], [4.5e6 + 0.25], [1234.56], [0.5], [42]]);
    expect(t.split('\n').slice(2).map((l) => l.trim())).toEqual(['32050', '4500000', '1235', '0.5000', '42']);
    expect(t).not.toMatch(/e\+/);
  });

  it('writes CSV with a header, quoting what needs it; csvLines writes rows alone', () => {
    expect(renderCsv(['a', 'b'], [['x,y', 'say "hi"']])).toBe('a,b\n"x,y","say ""hi"""');
    expect(renderCsv(['a'], [])).toBe('a');
    expect(csvLines([[1, null], ['z', 2.5]])).toBe('1,\nz,2.500');
  });
});
