import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readerSql } from '../../src/batch/io/input-scan.ts';
import { ForwardRowReader, isReadEndedEarly } from '../../src/batch/io/forward-row-reader.ts';
import { tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-forward-rows');
afterAll(() => root.remove());

function csv(rows: number): string {
  const path = join(root.dir, `rows-${rows}.csv`);
  const lines = ['id,name'];
  for (let i = 0; i < rows; i++) lines.push(`${i},row ${i}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return readerSql({ path, format: 'csv', hive: false });
}

describe('ForwardRowReader: whole rows of a file without row numbers, fetched forward by row number', () => {
  it('answers the rows asked for across chunks and calls, from a start row, with the file columns', async () => {
    const reader = new ForwardRowReader(csv(10_000), 1000);
    try {
      const first = await reader.rowsAt([1000, 1001, 3047, 3048]);
      expect(first.schema.names).toEqual(['id', 'name']);
      expect(first.rows.map((r) => r.name)).toEqual(['row 1000', 'row 1001', 'row 3047', 'row 3048']);
      const next = await reader.rowsAt([3048, 9999]);
      expect(next.rows.map((r) => Number(r.id))).toEqual([3048, 9999]);
    } finally {
      reader.close();
    }
  });

  it('refuses a row past the end of the read (ReadEndedEarly) and a row it has already passed', async () => {
    const reader = new ForwardRowReader(csv(100), 0);
    try {
      expect(isReadEndedEarly(await reader.rowsAt([100]).catch((error: unknown) => error))).toBe(true);
    } finally {
      reader.close();
    }
    const again = new ForwardRowReader(csv(5000), 0);
    try {
      await again.rowsAt([4500]);
      await expect(again.rowsAt([10])).rejects.toThrow(/already passed/);
    } finally {
      again.close();
    }
  });
});
