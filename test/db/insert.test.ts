import { describe, expect, it } from 'vitest';
import { insertRecords, insertRows } from '../../src/db/client.js';

describe('insertRows', () => {
  it("counts each row's placeholders from the column list, in each provider's style", () => {
    expect(insertRows('sqlite', 'T', ['a', 'b'], [[1, 'x'], [2, null]])).toEqual({ sql: 'INSERT INTO "T" ("a", "b") VALUES (?,?),(?,?)', values: [1, 'x', 2, null] });
    expect(insertRows('postgres', 'T', ['a', 'b'], [[1, 'x'], [2, null]]).sql).toBe('INSERT INTO "T" ("a", "b") VALUES ($1,$2),($3,$4)');
  });

  it('refuses a row whose values do not match the columns', () => {
    expect(() => insertRows('sqlite', 'Run', ['id', 'status'], [['r1', 'done'], ['r2']])).toThrow('INSERT INTO "Run": row 1 has 1 values for 2 columns (id, status)');
  });

  it('reads the columns of rows written as objects from their keys, each value beside its name', () => {
    expect(insertRecords('sqlite', 'T', [{ a: 1, b: 'x' }, { b: null, a: 2 }])).toEqual({ sql: 'INSERT INTO "T" ("a", "b") VALUES (?,?),(?,?)', values: [1, 'x', 2, null] });
    expect(insertRecords('postgres', 'T', [{ a: 1, b: 'x' }]).sql).toBe('INSERT INTO "T" ("a", "b") VALUES ($1,$2)');
  });

  it('refuses rows of different columns, and no rows', () => {
    expect(() => insertRecords('sqlite', 'Run', [{ id: 'r1', status: 'done' }, { id: 'r2' }])).toThrow('INSERT INTO "Run": row 1 has the columns (id), row 0 (id, status)');
    expect(() => insertRecords('sqlite', 'Run', [{ id: 'r1', status: 'done' }, { id: 'r2', reason: null }])).toThrow('INSERT INTO "Run": row 1 has the columns (id, reason), row 0 (id, status)');
    expect(() => insertRecords('sqlite', 'Run', [])).toThrow('INSERT INTO "Run": no rows');
  });
});
