import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EntityKeyTemplate } from '../../src/features/entity-key.ts';
import { openFeatureTable, type FeatureTable } from '../../src/features/feature-table.ts';
import { MemoryFeatureStore } from '../../src/features/memory-feature-store.ts';

/**
 * CSV feature files (memory store and `caliper features load`) are read with csv-parse, not DuckDB (start-up): the
 * rules of csv-feature-table.ts, on real files. The well-formed cases read as DuckDB's read_csv(header, all_varchar)
 * read them; a malformed file is refused with its line instead of being guessed at.
 */
const root = mkdtempSync(join(tmpdir(), 'caliper-csv-features-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let fileNumber = 0;
function csvFile(content: string | Buffer): string {
  const path = join(root, `features-${++fileNumber}.csv`);
  writeFileSync(path, content);
  return path;
}

async function rowsOf(table: FeatureTable): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for await (const chunk of table.chunks()) rows.push(...chunk);
  table.close();
  return rows;
}

describe('CSV feature files', () => {
  it('read the header and every row as text: leading zeros and spaces kept, an empty cell null', async () => {
    const table = await openFeatureTable(csvFile('user_id,count,name\n007,12, Ann \n,5,\n'));
    expect(table.columns).toEqual(['user_id', 'count', 'name']);
    expect(table.rowCount).toBe(2);
    expect(await rowsOf(table)).toEqual([
      { user_id: '007', count: '12', name: ' Ann ' },
      { user_id: null, count: '5', name: null },
    ]);
  });

  it('take quoted fields with separators, doubled quotes and line breaks in them', async () => {
    const table = await openFeatureTable(csvFile('id,note\n"1,5","he said ""hi"""\n2,"two\nlines"\n3,""\n'));
    expect(await rowsOf(table)).toEqual([
      { id: '1,5', note: 'he said "hi"' },
      { id: '2', note: 'two\nlines' },
      { id: '3', note: null },
    ]);
  });

  it('find the separator in the header line (, ; tab |) and take CRLF rows and a byte-order mark', async () => {
    for (const [separator, name] of [
      [';', 'semicolon'],
      ['\t', 'tab'],
      ['|', 'pipe'],
    ] as const) {
      const table = await openFeatureTable(csvFile(`id${separator}a${separator}b\n1${separator}x,y${separator}2.5\n`));
      expect(await rowsOf(table), name).toEqual([{ id: '1', a: 'x,y', b: '2.5' }]);
    }
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('id,a\r\n1,x\r\n2,y\r\n')]);
    expect(await rowsOf(await openFeatureTable(csvFile(bom)))).toEqual([
      { id: '1', a: 'x' },
      { id: '2', a: 'y' },
    ]);
  });

  it('come in chunks of at most 4096 rows, all of them, in file order', async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `u${i},${i}`);
    const table = await openFeatureTable(csvFile(`user_id,n\n${lines.join('\n')}\n`));
    expect(table.rowCount).toBe(10_000);
    const sizes: number[] = [];
    const ids: unknown[] = [];
    for await (const chunk of table.chunks()) {
      sizes.push(chunk.length);
      ids.push(...chunk.map((row) => row.user_id));
    }
    expect(sizes).toEqual([4096, 4096, 1808]);
    expect(ids).toEqual(lines.map((line) => line.split(',')[0]));
  });

  it('refuse a row with another number of fields than the header, naming the file and the line', async () => {
    const path = csvFile('id,a\n1,x\n2\n');
    await expect(openFeatureTable(path)).rejects.toMatchObject({
      code: 'CALIPER_INVALID_INPUT',
      message: expect.stringMatching(new RegExp(`^${path}: cannot read the feature file: .*expect 2, got 1 on line 3`)),
    });
  });

  it('refuse an empty file, a header naming a column twice, and a column without a name', async () => {
    const empty = csvFile('');
    await expect(openFeatureTable(empty)).rejects.toThrow(`${empty}: cannot read the feature file: the file is empty`);
    const twice = csvFile('id,a,id\n1,2,3\n');
    await expect(openFeatureTable(twice)).rejects.toThrow('the header names column "id" twice');
    const unnamed = csvFile('id,,b\n1,2,3\n');
    await expect(openFeatureTable(unnamed)).rejects.toThrow("the header's column 2 has no name");
  });

  it('feed the memory store: the separator found, keys as written', async () => {
    const key = EntityKeyTemplate.parse('user:{user_id}', (e) => {
      throw new Error(e);
    });
    const store = await MemoryFeatureStore.fromFile(csvFile('user_id;user_txn_count\n007;12\nu2;\n'), key, [
      { name: 'user_txn_count', type: 'integer', default: 0 },
    ]);
    expect(await store.lookup(['user:007', 'user:7', 'user:u2'])).toEqual([[12], null, [undefined]]);
  });
});
