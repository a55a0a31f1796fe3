import { describe, expect, it } from 'vitest';
import { readSamples, sampleColumns } from '../../src/db/samples.js';

describe("a result's samples as stored", () => {
  it('read back as the binary gave them: samples, rounds and per-sample clocks', () => {
    const r = { samples_us: [10.5, 11, 12.25], rounds: [0, 0, 1], sm_clock_mhz: [1410, null, 1395] };
    const cols = sampleColumns(r);
    expect(cols).toEqual({ samplesUs: '[10.5,11,12.25]', rounds: '[0,0,1]', smClockMhz: '[1410,null,1395]' });
    expect(readSamples({ id: 'r1/fused', ...cols })).toEqual({ samples: [10.5, 11, 12.25], rounds: [0, 0, 1], smClockMhz: [1410, null, 1395] });
    // No clock measured (cpu): no column.
    expect(readSamples({ id: 'r1/fused', ...sampleColumns({ ...r, sm_clock_mhz: null }) }).smClockMhz).toBeNull();
  });

  it('refuse a column that is not a list of numbers, naming the result and the column', () => {
    const ok = { id: 'r1/fused', samplesUs: '[1]', rounds: '[0]', smClockMhz: null };
    expect(() => readSamples({ ...ok, samplesUs: '[1,null]' })).toThrow('result r1/fused: Result.samplesUs is not a JSON list of numbers');
    expect(() => readSamples({ ...ok, rounds: 'not json' })).toThrow('result r1/fused: Result.rounds is not a JSON list of numbers');
    expect(() => readSamples({ ...ok, smClockMhz: '{"a":1}' })).toThrow('result r1/fused: Result.smClockMhz is not a JSON list of numbers (or nulls)');
  });
});
