import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { csvDialect, readerSql, sniffedReaderSql } from '../../src/batch/io/input-scan.ts';
import { query, tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-csv-dialect');
afterAll(() => root.remove());

const HEADER = 'id,transaction_amount,merchant_category,time_since_last_txn';

/** Column names, types and every row as DuckDB reads them through `from`. */
async function read(from: string): Promise<{ columns: Record<string, unknown>[]; rows: Record<string, unknown>[] }> {
  return {
    columns: await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${from})`),
    rows: await query(`SELECT * FROM ${from}`),
  };
}

let counter = 0;
function file(bytes: string): { path: string; format: 'csv' } {
  const path = join(root.dir, `${counter++}.csv`);
  writeFileSync(path, bytes);
  return { path, format: 'csv' };
}

describe('a CSV input is sniffed once: later reads name the sniffed dialect and types', () => {
  const files: [string, string][] = [
    ['plain', `${HEADER}\n1,12.5,fuel,60\n2,900,jewelry,5\n`],
    ['byte-order mark', `\uFEFF${HEADER}\n1,12.5,fuel,60\n`],
    ['CRLF', `${HEADER}\r\n1,12.5,fuel,60\r\n2,900,jewelry,5\r\n`],
    [
      'quoted commas, newlines, doubled quotes',
      `note,${HEADER}\n"a, b",1,12.5,fuel,60\n"two\nlines",2,3,online,7\n"say ""hi""",3,4,"fuel",8\n`,
    ],
    ['semicolons', `id;transaction_amount;merchant_category;time_since_last_txn\n1;12.5;fuel;60\n`],
    ['blank lines, no final newline', `${HEADER}\n1,12.5,fuel,60\n\n2,3,online,7`],
    [
      'whitespace around header names',
      ` id , transaction_amount ,merchant_category, time_since_last_txn\n1,12.5,fuel,60\n`,
    ],
    ['dates and timestamps', `day,at,${HEADER}\n2026-11-30,2026-11-30 12:00:00,1,12.5,fuel,60\n`],
  ];
  for (const [name, bytes] of files)
    it(`${name}: the same columns, types and rows as read_csv sniffing it itself`, async () => {
      const input = file(bytes);
      const sniffed = await sniffedReaderSql(input);
      expect(sniffed).toContain('auto_detect = false');
      expect(await read(sniffed)).toEqual(await read(readerSql(input)));
    });

  it('sniffs a file once per process, again once the file changes', async () => {
    const input = file(`${HEADER}\n1,12.5,fuel,60\n`);
    const first = csvDialect(input);
    expect(csvDialect(input)).toBe(first);
    const before = await first;
    writeFileSync(input.path, `id;transaction_amount;merchant_category;time_since_last_txn;extra\n1;12.5;fuel;60;x\n`);
    const after = await csvDialect(input);
    expect(after).not.toBe(before);
    expect(after!.options).toContain(`delim = ';'`);
  });

  it('a file the sniffer refuses keeps the reader that sniffs for itself', async () => {
    const input = { path: join(root.dir, 'missing.csv'), format: 'csv' as const };
    expect(await csvDialect(input)).toBeUndefined();
    expect(await sniffedReaderSql(input)).toBe(readerSql(input));
  });
});
