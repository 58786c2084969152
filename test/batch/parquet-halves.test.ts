import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { appendParquetFile, ParquetJoinError, parquetRowGroupRows } from '../../src/batch/io/parquet-footer.ts';
import { parquetHalvesCut, rowGroupCut } from '../../src/batch/io/parquet-halves.ts';
import { batchWithHalves, fraudModelDir, type HalvesRun, query, tempRoot } from './batch-fixtures.ts';
import {
  decodeThriftStruct,
  encodeThriftStruct,
  field,
  footerOf,
  integer,
  listItems,
  rewriteFooter,
  structFields,
  THRIFT,
  type ThriftField,
} from './thrift-compact.ts';

/**
 * A plain Parquet input scored in two halves of whole row groups by two COPYs side by side, the two Parquet outputs
 * joined into one at the footer (src/batch/io/parquet-halves.ts, parquet-footer.ts). CALIPER_BATCH_HALVES_BYTES=1
 * makes every test file "large"; 'off' is the one COPY each test compares with.
 */
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-parquet-halves');
let model: string;
let generated: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  generated = await generateFraudData({ rows: 30_000, out: join(root.dir, 'generated.parquet'), seed: 47 });
});

afterAll(() => root.remove());

/** `rows` rows of the generated file rewritten with `groupRows` rows per row group. */
async function parquetInput(name: string, rows: number, groupRows: number): Promise<string> {
  const path = join(root.dir, name);
  await query(
    `COPY (SELECT * FROM read_parquet('${generated}') LIMIT ${rows}) TO '${path}' (FORMAT parquet, ROW_GROUP_SIZE ${groupRows})`,
  );
  return path;
}

async function rowGroups(path: string): Promise<number> {
  const [r] = await query(`SELECT count(DISTINCT row_group_id)::INTEGER AS n FROM parquet_metadata('${path}')`);
  return r!.n as number;
}

const batch = (args: string[], halves: 'on' | 'off' | 'default', env: NodeJS.ProcessEnv = {}): HalvesRun =>
  batchWithHalves(model, args, halves, env);

/** Rows of `a` not in `b` (EXCEPT ALL, both ways) and rows whose position differs. */
async function sameRowsInOrder(a: string, b: string): Promise<void> {
  const [diff] = await query(
    `SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('${a}') EXCEPT ALL SELECT * FROM read_parquet('${b}')))::INTEGER AS only_a,
            (SELECT count(*) FROM (SELECT * FROM read_parquet('${b}') EXCEPT ALL SELECT * FROM read_parquet('${a}')))::INTEGER AS only_b,
            (SELECT count(*) FROM read_parquet('${a}'))::INTEGER AS n`,
  );
  expect(diff).toMatchObject({ only_a: 0, only_b: 0 });
  // Each row (all its columns, as one struct) against the row at the same position.
  const [order] = await query(
    `SELECT count(*) FILTER (WHERE x.h IS DISTINCT FROM y.h)::INTEGER AS misplaced
     FROM (SELECT hash(t) AS h FROM read_parquet('${a}') t) x POSITIONAL JOIN (SELECT hash(t) AS h FROM read_parquet('${b}') t) y`,
  );
  expect(order).toEqual({ misplaced: 0 });
}

const temporaries = (): string[] => readdirSync(root.dir).filter((f) => f.includes('.tmp-'));

describe('a Parquet input scored in two halves side by side', () => {
  // Stitched: the predictions added to the input's own column chunks (parquet-stitch.ts); joined: every column
  // rewritten by each half's COPY, the two outputs joined at the footer (CALIPER_BATCH_STITCH=off).
  for (const [groups, groupRows, rows, stitch] of [
    [2, 5_000, 10_000, 'on'],
    [5, 4_000, 20_000, 'on'],
    [7, 4_096, 27_000, 'on'],
    [2, 5_000, 10_000, 'off'],
    [5, 4_000, 20_000, 'off'],
    [7, 4_096, 27_000, 'off'],
  ] as const)
    it(`${groups} row groups, ${stitch === 'on' ? 'stitched' : 'joined'}: one Parquet file with the rows of one COPY in input order, statistics per row group`, async () => {
      const input = await parquetInput(`in-${groups}-${stitch}.parquet`, rows, groupRows);
      expect(await rowGroups(input)).toBe(groups);
      const halves = join(root.dir, `halves-${groups}-${stitch}.parquet`);
      const one = join(root.dir, `one-${groups}-${stitch}.parquet`);
      const env = { CALIPER_BATCH_STITCH: stitch };
      const run = batch(['--input', input, '--output', halves], 'on', env);
      expect(run.halves).toBe(true);
      expect(run.stitched).toBe(stitch === 'on');
      // The second half is scored on the worker thread `caliper batch` starts for it, with its own DuckDB and session.
      expect(run.secondOnThread).toBe(true);
      expect(run.summary).toMatchObject({ rows, outputRows: rows, errors: 0, path: 'one-pass' });
      expect(batch(['--input', input, '--output', one], 'off', env)).toMatchObject({
        halves: false,
        stitched: stitch === 'on',
      });
      await sameRowsInOrder(halves, one);
      // transaction_id is the row's position in the input.
      const [order] = await query(
        `SELECT count(*) FILTER (WHERE transaction_id <> position)::INTEGER AS misplaced FROM (SELECT transaction_id, row_number() OVER () - 1 AS position FROM read_parquet('${halves}'))`,
      );
      expect(order).toEqual({ misplaced: 0 });
      // Every row group's statistics read back, and they bound its rows.
      const stats = await query(
        `SELECT row_group_id::INTEGER AS g, row_group_num_rows::INTEGER AS rows, stats_min::INTEGER AS lo, stats_max::INTEGER AS hi FROM parquet_metadata('${halves}') WHERE path_in_schema = 'transaction_id' ORDER BY g`,
      );
      let first = 0;
      for (const s of stats) {
        expect(s).toMatchObject({ lo: first, hi: first + (s.rows as number) - 1 });
        first += s.rows as number;
      }
      expect(first).toBe(rows);
      // A filter on a column DuckDB prunes by statistics finds the same rows.
      const [hit] = await query(
        `SELECT count(*)::INTEGER AS n FROM read_parquet('${halves}') WHERE transaction_id = ${rows - 3}`,
      );
      expect(hit).toEqual({ n: 1 });
      expect(temporaries()).toEqual([]);
    }, 120_000);

  it('one row group: one COPY', async () => {
    const input = await parquetInput('in-1.parquet', 10_000, 20_000);
    expect(await rowGroups(input)).toBe(1);
    const run = batch(['--input', input, '--output', join(root.dir, 'single.parquet')], 'on');
    expect(run).toMatchObject({ halves: false, summary: { rows: 10_000, path: 'one-pass' } });
  }, 120_000);

  it('a Parquet input to CSV: one COPY (the CSV halves cut text inputs only)', async () => {
    const input = await parquetInput('in-csv-out.parquet', 10_000, 5_000);
    const run = batch(['--input', input, '--output', join(root.dir, 'out.csv')], 'on');
    expect(run).toMatchObject({ halves: false, summary: { rows: 10_000, path: 'one-pass' } });
  }, 120_000);

  it('a bad row in the second half: the job keeps the parts path, the row numbered in the whole file', async () => {
    const dirty = join(root.dir, 'dirty.parquet');
    await query(
      `COPY (SELECT transaction_id, transaction_amount, CASE WHEN transaction_id = 17001 THEN 'casino' ELSE merchant_category END AS merchant_category, time_since_last_txn FROM read_parquet('${generated}') LIMIT 20000) TO '${dirty}' (FORMAT parquet, ROW_GROUP_SIZE 4000)`,
    );
    const output = join(root.dir, 'dirty-scored.parquet');
    // The row is found by the worker thread's scoring function: its refusal stops both COPYs as the main thread's would.
    expect(batch(['--input', dirty, '--output', output], 'on')).toMatchObject({
      halves: true,
      secondOnThread: true,
      summary: { rows: 20_000, outputRows: 19_999, errors: 1, path: 'parts' },
    });
    const errors = readFileSync(`${output}.errors.jsonl`, 'utf8').trimEnd().split('\n');
    // transaction_id is the 0-based position: the 17,002nd row (rows are numbered from 1), in the second half (16,000+).
    expect(errors.map((l) => (JSON.parse(l) as { row: number }).row)).toEqual([17_002]);
    expect(temporaries()).toEqual([]);
  }, 120_000);

  // DuckDB writes some footers from the rows: a GEOMETRY column's GeoParquet 'geo' key/value metadata holds the file's
  // bounding box, a VARIANT column is shredded into a schema of the types it holds. Two halves' footers then differ,
  // the join is refused, and the job scored every row a second time on the parts path (1M rows with a point column,
  // built CLI: 1.83 s against 0.84 s for one COPY).
  for (const [name, kind, column, refusal] of [
    [
      'geometry',
      'a GEOMETRY column',
      `('POINT(' || transaction_amount || ' ' || transaction_id || ')')::GEOMETRY`,
      'key/value metadata',
    ],
    [
      'variant',
      'a VARIANT column of other types in each half',
      `CASE WHEN transaction_id < 8000 THEN transaction_id::VARIANT ELSE merchant_category::VARIANT END`,
      'schema',
    ],
  ] as const)
    it(`${kind}: footers the join refuses; one COPY writes the output, not the parts path`, async () => {
      const input = join(root.dir, `footer-${name}.parquet`);
      await query(
        `COPY (SELECT *, ${column} AS extra FROM read_parquet('${generated}') LIMIT 16000) TO '${input}' (FORMAT parquet, ROW_GROUP_SIZE 4000)`,
      );
      const halves = join(root.dir, `footer-${name}-halves.parquet`);
      const one = join(root.dir, `footer-${name}-one.parquet`);
      // Stitching the predictions to the input's own columns (parquet-stitch.ts) joins no footers: off here.
      const env = {
        ...process.env,
        CALIPER_BATCH_PROFILE: '1',
        CALIPER_BATCH_HALVES_BYTES: '1',
        CALIPER_BATCH_STITCH: 'off',
      };
      const run = spawnSync(
        process.execPath,
        [CLI, 'batch', '--model', model, '--json', '--overwrite', '--input', input, '--output', halves],
        { encoding: 'utf8', env },
      );
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).toContain('scoring copy in two halves');
      expect(run.stderr).toContain(`the halves could not be joined (the two files' ${refusal} differ): one COPY`);
      expect(JSON.parse(run.stdout.trim().split('\n').pop()!)).toMatchObject({
        rows: 16_000,
        outputRows: 16_000,
        path: 'one-pass',
      });
      batch(['--input', input, '--output', one], 'off', { CALIPER_BATCH_STITCH: 'off' });
      expect(readFileSync(halves).equals(readFileSync(one))).toBe(true);
      expect(temporaries()).toEqual([]);
    }, 120_000);

  it('Ctrl-C while the halves are written: exit 130, no output, no temporaries', async () => {
    const input = join(root.dir, 'large.parquet');
    await generateFraudData({ rows: 600_000, out: input, seed: 48 });
    const output = join(root.dir, 'interrupted.parquet');
    const child = spawn(process.execPath, [CLI, 'batch', '--model', model, '--input', input, '--output', output], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        CALIPER_BATCH_PROFILE: '1',
        CALIPER_BATCH_HALVES_BYTES: '1',
        CALIPER_BATCH_SECOND_HALF_THREAD: 'always',
      },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    // Both halves' outputs exist once both COPYs write.
    while (readdirSync(root.dir).filter((f) => f.startsWith('.interrupted.parquet.tmp-')).length < 2) {
      if (child.exitCode !== null)
        throw new Error(`batch exited before both halves wrote (${child.exitCode}): ${stderr}`);
      if (Date.now() > deadline) throw new Error('the halves were not seen within 60 s');
      await new Promise((r) => setTimeout(r, 1));
    }
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('scoring copy in two halves');
    // The interrupt reaches the worker thread's COPY too: the process exits, its half's output removed.
    expect(stderr).toContain('the second on a worker thread');
    expect(existsSync(output)).toBe(false);
    expect(temporaries()).toEqual([]);
  }, 120_000);
});

describe('the size threshold, whatever the load', () => {
  it('a Parquet input over 8 MiB with every core busy with other processes: halves; under it: one COPY', async () => {
    const large = join(root.dir, 'large-busy.parquet');
    await generateFraudData({ rows: 700_000, out: large, seed: 49 });
    expect(statSync(large).size).toBeGreaterThan(8 << 20);
    const small = await parquetInput('small-busy.parquet', 30_000, 10_000);
    const spinners = cpus().map(() =>
      spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end);'], { stdio: 'ignore' }),
    );
    try {
      await new Promise((r) => setTimeout(r, 500));
      const run = batch(['--input', large, '--output', join(root.dir, 'large-busy-out.parquet')], 'default');
      expect(run).toMatchObject({ halves: true, summary: { rows: 700_000, path: 'one-pass' } });
      expect(batch(['--input', small, '--output', join(root.dir, 'small-busy-out.parquet')], 'default').halves).toBe(
        false,
      );
    } finally {
      for (const spinner of spinners) spinner.kill('SIGKILL');
    }
  }, 120_000);
});

describe('rowGroupCut', () => {
  it('the row-group boundary nearest the middle row; none for one group', () => {
    expect(rowGroupCut([100])).toBeUndefined();
    expect(rowGroupCut([100, 100])).toBe(100);
    expect(rowGroupCut([100, 100, 100])).toBe(100);
    expect(rowGroupCut([10, 100, 10])).toBe(10);
    expect(rowGroupCut([122_880, 122_880, 122_880, 122_880, 122_880, 122_880, 122_880, 122_880, 16_960])).toBe(491_520);
  });
});

/** Each column chunk's fields of every row group of `fields` (a FileMetaData). */
function columnChunks(fields: ThriftField[]): ThriftField[][] {
  return listItems(field(fields, 4)).flatMap((group) =>
    listItems(field(structFields(group), 1)).map((chunk) => structFields(chunk)),
  );
}

/**
 * Rows [from, to) of `input` written to `out` by one single-threaded COPY, as a half's COPY writes them (an 'only-2nd'
 * category in row `marked`, so that one value of the dictionary-encoded column lies in one row group's bloom filter).
 */
async function half(
  input: string,
  from: number,
  to: number,
  out: string,
  groupRows: number,
  marked = -1,
): Promise<void> {
  await query(
    `SET threads = 1; COPY (SELECT * EXCLUDE (file_row_number, merchant_category), CASE WHEN file_row_number = ${marked} THEN 'only-2nd' ELSE merchant_category END AS merchant_category FROM read_parquet('${input}', file_row_number = true) WHERE file_row_number >= ${from} AND file_row_number < ${to}) TO '${out}' (FORMAT parquet, ROW_GROUP_SIZE ${groupRows})`,
  );
}

/** parquet_metadata() of `path`, one object per column chunk in file order, without the file's name. */
function metadataOf(path: string): Promise<Record<string, unknown>[]> {
  return query(`SELECT * EXCLUDE (file_name) FROM parquet_metadata('${path}') ORDER BY row_group_id, column_id`);
}

describe('appendParquetFile', () => {
  it("DuckDB's footer decodes and encodes back byte for byte (the tests' codec)", async () => {
    const path = await parquetInput('footer.parquet', 10_000, 3_000);
    const { bytes } = footerOf(path);
    expect(Buffer.from(encodeThriftStruct(decodeThriftStruct(bytes))).equals(bytes)).toBe(true);
  });

  // 16,500 rows in 2,048-row groups: 9 groups (8 full, one of 116 rows), a string column dictionary-encoded with a
  // bloom filter, statistics on every column. Cut at each boundary, each half written as its COPY writes it.
  it('a cut at each row-group boundary: the rows of one file in order, every chunk offset and statistic right', async () => {
    const rows = 16_500;
    const input = await parquetInput('boundaries.parquet', rows, 2_048);
    const one = join(root.dir, 'boundaries-one.parquet');
    await half(input, 0, rows, one, 2_048, rows - 1);
    const groups = await rowGroups(input);
    expect(groups).toBe(9);
    for (let g = 1; g < groups; g++) {
      const cut = g * 2_048;
      const first = join(root.dir, `boundary-${g}-a.parquet`);
      const second = join(root.dir, `boundary-${g}-b.parquet`);
      // The marked row lies in the second half's last row group: only its bloom filter holds 'only-2nd'.
      await half(input, 0, cut, first, 2_048, rows - 1);
      await half(input, cut, rows, second, 2_048, rows - 1);
      // DuckDB writes no row-group ordinals: each half's footer is given them (0, 1, … in each file).
      for (const path of [first, second])
        rewriteFooter(path, (fields) =>
          listItems(field(fields, 4)).forEach((group, i) => {
            structFields(group).push({ id: 7, value: { type: THRIFT.I16, value: BigInt(i) } });
          }),
        );
      const [metaA, metaB] = [await metadataOf(first), await metadataOf(second)];
      const delta = BigInt(footerOf(first).start - 4);
      const groupOffsets = (path: string): bigint[] =>
        listItems(field(decodeThriftStruct(footerOf(path).bytes), 4)).map((group) =>
          integer(field(structFields(group), 5)),
        );
      const offsets = [...groupOffsets(first), ...groupOffsets(second).map((o) => o + delta)];
      expect(appendParquetFile(first, second)).toEqual({ rowGroups: groups, rows });
      // Row for row as one COPY writes them, and in input order.
      await sameRowsInOrder(first, one);
      const [hit] = await query(
        `SELECT count(*)::INTEGER AS n, min(transaction_id)::INTEGER AS id FROM read_parquet('${first}') WHERE merchant_category = 'only-2nd'`,
      );
      expect(hit).toEqual({ n: 1, id: rows - 1 });
      // Every column chunk's metadata: the first file's as it was, the second's with its offsets moved by `delta`.
      const moved = (m: Record<string, unknown>): Record<string, unknown> => {
        const out: Record<string, unknown> = { ...m, row_group_id: (m.row_group_id as bigint) + BigInt(g) };
        for (const k of ['data_page_offset', 'dictionary_page_offset', 'index_page_offset', 'bloom_filter_offset'])
          if (typeof m[k] === 'bigint' && (m[k] as bigint) > 0n) out[k] = (m[k] as bigint) + delta;
        return out;
      };
      expect(await metadataOf(first)).toEqual([...metaA, ...metaB.map(moved)]);
      expect(metaB.some((m) => typeof m.bloom_filter_offset === 'bigint')).toBe(true);
      expect(metaB.some((m) => typeof m.dictionary_page_offset === 'bigint')).toBe(true);
      // What parquet_metadata does not show: the footer's num_rows, each row group's file_offset and ordinal.
      const footer = decodeThriftStruct(footerOf(first).bytes);
      expect(integer(field(footer, 3))).toBe(BigInt(rows));
      expect(groupOffsets(first)).toEqual(offsets);
      expect(listItems(field(footer, 4)).map((group) => integer(field(structFields(group), 7)))).toEqual(
        [...Array(groups).keys()].map(BigInt),
      );
      expect(parquetRowGroupRows(first)).toEqual(
        [...Array(groups).keys()].map((i) => Math.min(2_048, rows - i * 2_048)),
      );
    }
  }, 120_000);

  // A list of fewer than 15 elements has its size in its header byte; from 15 on, in a varint after it.
  for (const [name, from, cut, to] of [
    ['7 + 8 groups: the joined list crosses 15', 0, 7 * 2_048, 30_000],
    ['15 + 15 groups: both lists long', 0, 30_000, 60_000],
  ] as const)
    it(`many row groups, ${name}`, async () => {
      const first = join(root.dir, `many-${cut}-a.parquet`);
      const second = join(root.dir, `many-${cut}-b.parquet`);
      const one = join(root.dir, `many-${cut}-one.parquet`);
      // 60,000 rows: the generated 30,000 twice, the second time with transaction_id from 30,000.
      const doubled = join(root.dir, 'doubled.parquet');
      if (!existsSync(doubled))
        await query(
          `COPY (SELECT * FROM read_parquet('${generated}') UNION ALL SELECT * REPLACE (transaction_id + 30000 AS transaction_id) FROM read_parquet('${generated}') ORDER BY transaction_id) TO '${doubled}' (FORMAT parquet)`,
        );
      await half(doubled, from, cut, first, 2_048);
      await half(doubled, cut, to, second, 2_048);
      await half(doubled, from, to, one, 2_048);
      const [groupsA, groupsB] = [parquetRowGroupRows(first), parquetRowGroupRows(second)];
      expect(groupsA.length + groupsB.length).toBeGreaterThanOrEqual(15);
      expect(appendParquetFile(first, second)).toEqual({
        rowGroups: groupsA.length + groupsB.length,
        rows: to - from,
      });
      expect(parquetRowGroupRows(first)).toEqual([...groupsA, ...groupsB]);
      expect(await rowGroups(first)).toBe(groupsA.length + groupsB.length);
      await sameRowsInOrder(first, one);
    }, 120_000);

  it('refuses what it cannot join, leaving the first file unchanged', async () => {
    const a = await parquetInput('refuse-a.parquet', 1_000, 500);
    const before = readFileSync(a);
    const refused = (second: string, why: RegExp): void => {
      expect(() => appendParquetFile(a, second)).toThrow(ParquetJoinError);
      expect(() => appendParquetFile(a, second)).toThrow(why);
      expect(readFileSync(a).equals(before)).toBe(true);
    };
    const b = join(root.dir, 'refuse-schema.parquet');
    await query(`COPY (SELECT transaction_id FROM read_parquet('${generated}') LIMIT 10) TO '${b}' (FORMAT parquet)`);
    refused(b, /schema differ/);
    const kv = join(root.dir, 'refuse-kv.parquet');
    await query(
      `COPY (SELECT * FROM read_parquet('${a}')) TO '${kv}' (FORMAT parquet, KV_METADATA {origin: 'elsewhere'})`,
    );
    refused(kv, /key\/value metadata differ/);
    // Column chunks of the second file given an offset index (pages' absolute offsets the join cannot shift), a
    // file_path (data in another file); the file given encryption (FileMetaData 8).
    const crafted = (name: string, edit: (fields: ThriftField[]) => void): string => {
      const path = join(root.dir, `refuse-${name}.parquet`);
      writeFileSync(path, before);
      rewriteFooter(path, edit);
      return path;
    };
    const inEachChunk = (id: number, value: ThriftField['value']) => (fields: ThriftField[]) => {
      for (const chunk of columnChunks(fields)) {
        chunk.push({ id, value });
        chunk.sort((x, y) => x.id - y.id);
      }
    };
    refused(crafted('offset-index', inEachChunk(4, { type: THRIFT.I64, value: 4n })), /offset index/);
    refused(
      crafted('file-path', inEachChunk(1, { type: THRIFT.BINARY, bytes: Buffer.from('x.parquet') })),
      /file_path/,
    );
    refused(
      crafted('encrypted', (fields) => fields.push({ id: 8, value: { type: THRIFT.STRUCT, fields: [] } })),
      /encrypted/,
    );
    // The joined footer's own checks: a footer cut short, one with bytes after its FileMetaData, not a Parquet file.
    const short = crafted('short', () => {});
    const bytes = readFileSync(short);
    const length = bytes.readUInt32LE(bytes.length - 8);
    const cutShort = Buffer.concat([
      bytes.subarray(0, bytes.length - 8 - length),
      bytes.subarray(bytes.length - 8 - length, bytes.length - 20),
    ]);
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(length - 12, 0);
    tail.write('PAR1', 4, 'latin1');
    writeFileSync(short, Buffer.concat([cutShort, tail]));
    refused(short, /footer ended/);
    writeFileSync(join(root.dir, 'not.parquet'), 'not parquet at all');
    refused(join(root.dir, 'not.parquet'), /not a Parquet file/);
    // The first file refused the same way: nothing written to it either.
    const encryptedFirst = crafted('encrypted-first', (fields) =>
      fields.push({ id: 8, value: { type: THRIFT.STRUCT, fields: [] } }),
    );
    const firstBefore = readFileSync(encryptedFirst);
    expect(() => appendParquetFile(encryptedFirst, a)).toThrow(/encrypted/);
    expect(readFileSync(encryptedFirst).equals(firstBefore)).toBe(true);
  });
});

describe('parquetHalvesCut', () => {
  it("the boundary nearest the middle row, from the file's footer: as DuckDB's parquet_metadata() counts the rows", async () => {
    for (const [rows, groupRows] of [
      [10_000, 5_000],
      [27_000, 4_096],
      [30_000, 2_048],
      [7_000, 2_048],
    ] as const) {
      const path = await parquetInput(`cut-${rows}-${groupRows}.parquet`, rows, groupRows);
      const counts = (
        await query(
          `SELECT DISTINCT row_group_id, row_group_num_rows::INTEGER AS n FROM parquet_metadata('${path}') ORDER BY row_group_id`,
        )
      ).map((r) => r.n as number);
      expect(parquetRowGroupRows(path)).toEqual(counts);
      expect(parquetHalvesCut(path, 1)).toBe(rowGroupCut(counts));
      expect(parquetHalvesCut(path, 1)).toBeGreaterThan(0);
      // Under the size threshold: one COPY.
      expect(parquetHalvesCut(path, statSync(path).size + 1)).toBeUndefined();
    }
  });

  it('one row group, no rows, or a footer it cannot read: undefined (one COPY)', async () => {
    expect(parquetHalvesCut(await parquetInput('cut-one-group.parquet', 1_000, 5_000), 1)).toBeUndefined();
    const empty = join(root.dir, 'cut-empty.parquet');
    await query(`COPY (SELECT * FROM read_parquet('${generated}') LIMIT 0) TO '${empty}' (FORMAT parquet)`);
    expect(parquetRowGroupRows(empty)).toEqual([]);
    expect(parquetHalvesCut(empty, 1)).toBeUndefined();
    writeFileSync(join(root.dir, 'cut-not.parquet'), 'not parquet at all');
    expect(parquetHalvesCut(join(root.dir, 'cut-not.parquet'), 1)).toBeUndefined();
  });
});
