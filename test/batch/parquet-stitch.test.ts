import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { sqlIdentifier } from '../../src/batch/io/duckdb-engine.ts';
import { appendParquetFile, ParquetJoinError, parquetRowGroupRows } from '../../src/batch/io/parquet-footer.ts';
import { parquetStitchLayout, stitchParquet } from '../../src/batch/io/parquet-stitch.ts';
import { batchWithHalves, CALIPER_CLI, fraudModelDir, type HalvesRun, query, tempRoot } from './batch-fixtures.ts';
import {
  decodeThriftStruct,
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
 * A Parquet job's predictions added to the input's own column chunks (src/batch/io/parquet-stitch.ts): the output is
 * the input's bytes up to its footer, the prediction files' data, and one footer listing both. Compared throughout
 * with the output of CALIPER_BATCH_STITCH=off, which rewrites every column through DuckDB (the previous behaviour).
 */
const root = tempRoot('batch-parquet-stitch');
const ROWS = 12_000;
/** The generated rows in 2,048-row groups: 5 full groups and one of 1,760 rows. */
const GROUPS = [2_048, 2_048, 2_048, 2_048, 2_048, 1_760];
const INPUT_COLUMNS = ['transaction_id', 'transaction_amount', 'merchant_category', 'time_since_last_txn'];
let model: string;
let generated: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  generated = await generateFraudData({ rows: ROWS, out: join(root.dir, 'generated.parquet'), seed: 61 });
});

afterAll(() => root.remove());

const path = (name: string): string => join(root.dir, name);

/**
 * Writes the rows of `select` (SQL in which `{g}` stands for the generated rows) to Parquet file `name` by one
 * single-threaded COPY, with `options` (COPY options after FORMAT parquet).
 */
async function write(name: string, select: string, options = ''): Promise<string> {
  const out = path(name);
  const sql = select.replaceAll('{g}', `read_parquet('${generated}')`);
  await query(`SET threads = 1; COPY (${sql}) TO '${out}' (FORMAT parquet${options ? `, ${options}` : ''})`);
  return out;
}

/** An input of row groups of `sizes` rows (each written as its own file, joined by appendParquetFile). */
async function grouped(name: string, sizes: number[]): Promise<string> {
  let from = 0;
  const first = path(`${name}.parquet`);
  for (const [i, size] of sizes.entries()) {
    const part = await write(
      i === 0 ? `${name}.parquet` : `${name}-${i}.parquet`,
      `SELECT * FROM {g} WHERE transaction_id >= ${from} AND transaction_id < ${from + size}`,
    );
    if (i > 0) appendParquetFile(first, part);
    from += size;
  }
  expect(parquetRowGroupRows(first)).toEqual(sizes);
  return first;
}

/** `caliper batch` of `input` to `output`, halves forced on or off, with `env` and more `args`. */
const score = (
  input: string,
  output: string,
  halves: 'on' | 'off',
  env: NodeJS.ProcessEnv = {},
  args: string[] = [],
): HalvesRun => batchWithHalves(model, ['--input', input, '--output', output, ...args], halves, env);

const temporaries = (): string[] => readdirSync(root.dir).filter((f) => f.includes('.tmp-'));

async function describeTypes(file: string): Promise<[unknown, unknown][]> {
  return (await query(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).map((c) => [c.column_name, c.column_type]);
}

/** `a` and `b` hold the same columns of the same types, and the same rows in the same order. */
async function sameRowsAndTypes(a: string, b: string): Promise<void> {
  expect(await describeTypes(a)).toEqual(await describeTypes(b));
  const [diff] = await query(
    `SELECT (SELECT count(*) FROM (FROM read_parquet('${a}') EXCEPT ALL FROM read_parquet('${b}')))::INTEGER AS only_a,
            (SELECT count(*) FROM (FROM read_parquet('${b}') EXCEPT ALL FROM read_parquet('${a}')))::INTEGER AS only_b,
            (SELECT count(*) FROM read_parquet('${a}'))::INTEGER AS rows_a,
            (SELECT count(*) FROM read_parquet('${b}'))::INTEGER AS rows_b`,
  );
  expect(diff).toMatchObject({ only_a: 0, only_b: 0, rows_a: diff!.rows_b });
  // Each row (all its columns, as one struct) against the row at the same position.
  const [order] = await query(
    `SELECT count(*) FILTER (WHERE x.h IS DISTINCT FROM y.h)::INTEGER AS misplaced
     FROM (SELECT hash(t) AS h FROM read_parquet('${a}') t) x POSITIONAL JOIN (SELECT hash(t) AS h FROM read_parquet('${b}') t) y`,
  );
  expect(order).toEqual({ misplaced: 0 });
}

/** The output's first columns are the input's rows, in order, each with its predictions (the last two columns). */
async function keptRowsAreTheInput(input: string, output: string): Promise<void> {
  const [r] = await query(
    `SELECT count(*) FILTER (WHERE x.h IS DISTINCT FROM y.h)::INTEGER AS misplaced, count(*)::INTEGER AS n
     FROM (SELECT hash(t) AS h FROM read_parquet('${input}') t) x
     POSITIONAL JOIN (SELECT hash(t) AS h FROM (SELECT * EXCLUDE (fraud_probability, is_fraud) FROM read_parquet('${output}')) t) y`,
  );
  const [counts] = await query(
    `SELECT (SELECT count(*) FROM read_parquet('${input}'))::INTEGER AS n,
            (SELECT count(*) FROM read_parquet('${output}') WHERE fraud_probability IS NULL OR is_fraud IS NULL)::INTEGER AS no_prediction`,
  );
  expect(counts).toMatchObject({ no_prediction: 0 });
  expect(r).toEqual({ misplaced: 0, n: counts!.n });
}

/** What parquet_metadata() says of each column chunk, where it lies and how it is written. */
const CHUNK_FIELDS =
  'row_group_id, column_id, path_in_schema, type, num_values, compression, encodings, stats_min, stats_max, ' +
  'stats_null_count, dictionary_page_offset, data_page_offset, total_compressed_size, total_uncompressed_size, ' +
  'bloom_filter_offset, bloom_filter_length';

function chunksOf(file: string, where = ''): Promise<Record<string, unknown>[]> {
  return query(`SELECT ${CHUNK_FIELDS} FROM parquet_metadata('${file}') ${where} ORDER BY row_group_id, column_id`);
}

/**
 * The output's first bytes are the input's up to its footer, and each of the input's column chunks is listed in the
 * output's footer as the input's lists it (offsets, sizes, encodings, statistics, bloom filters).
 */
async function inputChunksKept(input: string, output: string): Promise<void> {
  const { start } = footerOf(input);
  expect(readFileSync(output).subarray(0, start).equals(readFileSync(input).subarray(0, start))).toBe(true);
  const own = await chunksOf(input);
  const leaves = own.filter((c) => c.row_group_id === 0n).length;
  expect(own.length).toBeGreaterThan(0);
  expect(await chunksOf(output, `WHERE column_id < ${leaves}`)).toEqual(own);
  // The prediction chunks lie after the input's bytes.
  const added = await chunksOf(output, `WHERE column_id >= ${leaves}`);
  const groups = own.length / leaves;
  expect(added.length).toBeGreaterThanOrEqual(groups);
  expect(added.length % groups).toBe(0);
  for (const chunk of added) expect(chunk.data_page_offset as bigint).toBeGreaterThanOrEqual(BigInt(start));
}

/**
 * The footer of Parquet file `file`, decoded by the tests' own codec, is consistent: num_rows is the row groups'
 * sum, each row group's sizes are its chunks' sums, every chunk's pages and bloom filter lie inside the file's data
 * (a page header or bloom filter header at each offset), one chunk and one column order per leaf column.
 */
function footerConsistent(file: string): void {
  const bytes = readFileSync(file);
  const { bytes: footer, start } = footerOf(file);
  const meta = decodeThriftStruct(footer);
  const schema = listItems(field(meta, 2)).map(structFields);
  const children = (e: ThriftField[]): number => Number(field(e, 5) ? integer(field(e, 5)) : 0n);
  const leaves = schema.filter((e) => children(e) === 0).length;
  // The root's children and their subtrees are every schema element after it.
  let at = 1;
  const span = (i: number): number => {
    let next = i + 1;
    for (let c = 0; c < children(schema[i]!); c++) next = span(next);
    return next;
  };
  for (let c = 0; c < children(schema[0]!); c++) at = span(at);
  expect(at).toBe(schema.length);
  const groups = listItems(field(meta, 4)).map(structFields);
  expect(groups.reduce((sum, g) => sum + integer(field(g, 3)), 0n)).toBe(integer(field(meta, 3)));
  const sum = (metas: ThriftField[][], id: number): bigint => metas.reduce((s, m) => s + integer(field(m, id)), 0n);
  for (const group of groups) {
    const chunks = listItems(field(group, 1)).map(structFields);
    expect(chunks.length).toBe(leaves);
    const metas = chunks.map((chunk) => structFields(field(chunk, 3)));
    // A row group's file_offset, where written, is its first chunk's first page.
    const firstPage = (m: ThriftField[]): bigint => integer(field(m, 11) ?? field(m, 9));
    if (field(group, 5)) expect(integer(field(group, 5))).toBe(firstPage(metas[0]!));
    expect(integer(field(group, 2))).toBe(sum(metas, 6));
    if (field(group, 6)) expect(integer(field(group, 6))).toBe(sum(metas, 7));
    for (const m of metas) {
      const data = Number(integer(field(m, 9)));
      const dictionary = field(m, 11) ? Number(integer(field(m, 11))) : undefined;
      const first = Math.min(data, dictionary ?? data);
      expect(first).toBeGreaterThanOrEqual(4);
      expect(first + Number(integer(field(m, 7)))).toBeLessThanOrEqual(start);
      // PageHeader's field 1, its type (I32, zigzag): DATA_PAGE 0 or DATA_PAGE_V2 3; DICTIONARY_PAGE 2.
      expect([bytes[data], [0x00, 0x06].includes(bytes[data + 1]!)]).toEqual([0x15, true]);
      if (dictionary !== undefined) expect([bytes[dictionary], bytes[dictionary + 1]]).toEqual([0x15, 0x04]);
      if (field(m, 14)) {
        const bloom = Number(integer(field(m, 14)));
        expect(bloom).toBeGreaterThanOrEqual(4);
        expect(bloom + Number(integer(field(m, 15)))).toBeLessThanOrEqual(start);
        // BloomFilterHeader's field 1: numBytes (I32).
        expect(bytes[bloom]).toBe(0x15);
      }
    }
  }
  const orders = field(meta, 7);
  if (orders) expect(listItems(orders).length).toBe(leaves);
}

describe('a stitched job against every column rewritten (CALIPER_BATCH_STITCH=off)', () => {
  for (const halves of ['off', 'on'] as const)
    it(`halves ${halves}: the same rows in order and the same types; the input's column chunks are its own bytes`, async () => {
      const input = await write(`plain-${halves}.parquet`, 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048');
      expect(parquetRowGroupRows(input)).toEqual(GROUPS);
      const stitched = path(`plain-${halves}-stitched.parquet`);
      const rewritten = path(`plain-${halves}-rewritten.parquet`);
      const run = score(input, stitched, halves);
      expect(run).toMatchObject({
        stitched: true,
        halves: halves === 'on',
        summary: { rows: ROWS, outputRows: ROWS, errors: 0, path: 'one-pass' },
      });
      expect(run.stderr).toContain("[batch] predictions stitched to the input's columns (6 row groups)");
      if (halves === 'on') expect(run.stderr).toContain('predictions only)');
      const other = score(input, rewritten, halves, { CALIPER_BATCH_STITCH: 'off' });
      expect(other).toMatchObject({ stitched: false, summary: { rows: ROWS, outputRows: ROWS } });
      expect(other.stderr).toContain('[batch] every column rewritten: CALIPER_BATCH_STITCH=off');
      await sameRowsAndTypes(stitched, rewritten);
      expect((await describeTypes(stitched)).map(([name]) => name)).toEqual([
        ...INPUT_COLUMNS,
        'fraud_probability',
        'is_fraud',
      ]);
      await inputChunksKept(input, stitched);
      expect(parquetRowGroupRows(stitched)).toEqual(GROUPS);
      footerConsistent(stitched);
      expect(temporaries()).toEqual([]);
    });

  it('17 row groups of 700 rows and one of 100 (footer lists of 15 items or more), in halves', async () => {
    const sizes = [...Array.from({ length: 17 }, () => 700), 100];
    const input = await grouped('many', sizes);
    const stitched = path('many-stitched.parquet');
    const rewritten = path('many-rewritten.parquet');
    expect(score(input, stitched, 'on')).toMatchObject({ stitched: true, halves: true, summary: { rows: 12_000 } });
    score(input, rewritten, 'off', { CALIPER_BATCH_STITCH: 'off' });
    await sameRowsAndTypes(stitched, rewritten);
    await inputChunksKept(input, stitched);
    expect(parquetRowGroupRows(stitched)).toEqual(sizes);
    footerConsistent(stitched);
  });

  it('column names that need quoting, nested kept columns (STRUCT, LIST, MAP), NULLs in kept columns', async () => {
    const input = await write(
      'nested.parquet',
      `SELECT transaction_id AS "id with space", transaction_amount, merchant_category, time_since_last_txn,
        'x"y' || transaction_id AS "quo""te",
        CASE WHEN transaction_id % 7 = 0 THEN NULL ELSE transaction_id * 1.5 END AS "naïve 列",
        transaction_id % 3 = 0 AS "a.b",
        CASE WHEN transaction_id % 13 = 0 THEN NULL
             ELSE {'a': transaction_id, 'b': CASE WHEN transaction_id % 5 = 0 THEN NULL ELSE merchant_category END, 'c': [transaction_id, NULL]} END AS s,
        CASE WHEN transaction_id % 3 = 0 THEN NULL ELSE [transaction_id, transaction_id + 1] END AS l,
        CASE WHEN transaction_id % 4 = 0 THEN NULL ELSE MAP {merchant_category: transaction_id} END AS m,
        CASE WHEN transaction_id % 11 = 0 THEN NULL ELSE [{'x': [transaction_id % 4, NULL]}, NULL] END AS "deep list"
       FROM {g}`,
      'ROW_GROUP_SIZE 2048',
    );
    const [nulls] = await query(
      `SELECT count(*) FILTER (WHERE "naïve 列" IS NULL)::INTEGER AS n1, count(*) FILTER (WHERE s IS NULL)::INTEGER AS n2,
              count(*) FILTER (WHERE m IS NULL)::INTEGER AS n3 FROM read_parquet('${input}')`,
    );
    expect(nulls).toEqual({ n1: Math.ceil(ROWS / 7), n2: Math.ceil(ROWS / 13), n3: ROWS / 4 });
    const stitched = path('nested-stitched.parquet');
    const rewritten = path('nested-rewritten.parquet');
    expect(score(input, stitched, 'on')).toMatchObject({ stitched: true, halves: true, summary: { rows: ROWS } });
    expect(score(input, rewritten, 'off', { CALIPER_BATCH_STITCH: 'off' }).stitched).toBe(false);
    await sameRowsAndTypes(stitched, rewritten);
    await keptRowsAreTheInput(input, stitched);
    await inputChunksKept(input, stitched);
    footerConsistent(stitched);
    // A filter on a nested kept column reads the input's own pages.
    const filtered = (file: string) =>
      query(
        `SELECT "id with space" AS id, s.b AS b, m[merchant_category] AS v, "quo""te" AS q FROM read_parquet('${file}') WHERE s.a BETWEEN 4090 AND 4110 AND "naïve 列" IS NOT NULL ORDER BY id`,
      );
    const rows = await filtered(stitched);
    expect(rows.length).toBeGreaterThan(15);
    expect(rows).toEqual(await filtered(rewritten));
  });
});

describe('refused: every column rewritten, as with CALIPER_BATCH_STITCH=off', () => {
  /**
   * Scores `input` with stitching left to the job and with it off: the job refuses with `reason` (its profile line),
   * and its output is byte for byte the one CALIPER_BATCH_STITCH=off writes, the input's rows with their predictions.
   */
  async function refused(name: string, input: string, reason: string, args: string[] = []): Promise<string> {
    const output = path(`${name}-out.parquet`);
    const off = path(`${name}-off.parquet`);
    const run = score(input, output, 'off', {}, args);
    expect(run.stitched).toBe(false);
    expect(run.stderr).toContain(`[batch] every column rewritten: ${reason}\n`);
    score(input, off, 'off', { CALIPER_BATCH_STITCH: 'off' }, args);
    expect(readFileSync(output).equals(readFileSync(off))).toBe(true);
    expect(temporaries()).toEqual([]);
    return output;
  }

  it('a zstd input with the default (snappy) output', async () => {
    const input = await write('zstd.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048, COMPRESSION zstd');
    const output = await refused('zstd', input, 'an input column is not compressed with snappy');
    await keptRowsAreTheInput(input, output);
    const codecs = await query(`SELECT DISTINCT compression FROM parquet_metadata('${output}')`);
    expect(codecs).toEqual([{ compression: 'SNAPPY' }]);
  });

  it('--compression zstd on a zstd input: stitched', async () => {
    const input = await write('zstd-zstd.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048, COMPRESSION zstd');
    const stitched = path('zstd-zstd-stitched.parquet');
    const rewritten = path('zstd-zstd-rewritten.parquet');
    const args = ['--compression', 'zstd'];
    expect(score(input, stitched, 'off', {}, args).stitched).toBe(true);
    score(input, rewritten, 'off', { CALIPER_BATCH_STITCH: 'off' }, args);
    await sameRowsAndTypes(stitched, rewritten);
    await inputChunksKept(input, stitched);
    const codecs = await query(`SELECT DISTINCT compression FROM parquet_metadata('${stitched}')`);
    expect(codecs).toEqual([{ compression: 'ZSTD' }]);
  });

  it('row groups of 3,000 then 4,000 rows: refused; 4,000 then 3,000 (a shorter last group) is stitched', async () => {
    const uneven = await grouped('groups-3000-4000', [3_000, 4_000]);
    await keptRowsAreTheInput(uneven, await refused('uneven', uneven, 'the input row groups are of unequal sizes'));
    const shorterLast = await grouped('groups-4000-3000', [4_000, 3_000]);
    const stitched = path('groups-4000-3000-stitched.parquet');
    const rewritten = path('groups-4000-3000-rewritten.parquet');
    // In halves: one prediction file of one 4,000-row group, one of one 3,000-row group.
    expect(score(shorterLast, stitched, 'on')).toMatchObject({ stitched: true, halves: true });
    score(shorterLast, rewritten, 'off', { CALIPER_BATCH_STITCH: 'off' });
    await sameRowsAndTypes(stitched, rewritten);
    await inputChunksKept(shorterLast, stitched);
    expect(parquetRowGroupRows(stitched)).toEqual([4_000, 3_000]);
    footerConsistent(stitched);
  });

  it('a zero-row input', async () => {
    const input = await write('empty.parquet', 'SELECT * FROM {g} LIMIT 0');
    const output = await refused('empty', input, 'no row groups');
    const [count] = await query(`SELECT count(*)::INTEGER AS n FROM read_parquet('${output}')`);
    expect(count).toEqual({ n: 0 });
    expect((await describeTypes(output)).map(([name]) => name)).toEqual([
      ...INPUT_COLUMNS,
      'fraud_probability',
      'is_fraud',
    ]);
  });

  it("an input column left out (--keep): one named like a prediction, which the output can't hold", async () => {
    const input = await write('clash.parquet', 'SELECT *, transaction_id % 2 = 0 AS is_fraud FROM {g}');
    const output = await refused('clash', input, 'the output does not keep every input column as it is', [
      '--keep',
      INPUT_COLUMNS.join(','),
    ]);
    await keptRowsAreTheInput(await write('clash-kept.parquet', 'SELECT * FROM {g}'), output);
  });

  it('a prediction named like an input column (parquetStitchLayout; the job refuses such a --keep itself)', async () => {
    const input = await write('named.parquet', 'SELECT *, 0.5 AS fraud_probability FROM {g}');
    const kept = [...INPUT_COLUMNS, 'fraud_probability'].map((name) => `i.${sqlIdentifier(name)}`);
    expect(parquetStitchLayout(input, kept, ['fraud_probability', 'is_fraud'], 'snappy', sqlIdentifier)).toEqual({
      refused: 'a prediction is named like an input column',
    });
    expect(parquetStitchLayout(input, kept, ['score', 'is_fraud'], 'snappy', sqlIdentifier)).toEqual({
      rowGroupRows: ROWS,
    });
  });

  it('an input column named like a prediction but for case: rewritten, as DuckDB names the prediction apart', async () => {
    const input = await write('case.parquet', 'SELECT *, 0.5 AS "FRAUD_PROBABILITY" FROM {g}');
    const output = await refused('case', input, 'a prediction is named like an input column');
    const names = await query(`SELECT name FROM parquet_schema('${output}')`);
    expect(names.map((row) => row.name)).toEqual([
      'duckdb_schema',
      ...INPUT_COLUMNS,
      'FRAUD_PROBABILITY',
      'fraud_probability_1',
      'is_fraud',
    ]);
  });
});

describe('parquetStitchLayout', () => {
  it("each --compression stitches only an input of that codec (DuckDB's lz4 is LZ4_RAW)", async () => {
    const codecs = ['uncompressed', 'snappy', 'gzip', 'brotli', 'lz4', 'zstd'] as const;
    const kept = INPUT_COLUMNS.map((name) => `i.${sqlIdentifier(name)}`);
    for (const codec of codecs) {
      const input = await write(`codec-${codec}.parquet`, 'SELECT * FROM {g}', `COMPRESSION ${codec}`);
      for (const output of codecs)
        expect(parquetStitchLayout(input, kept, ['fraud_probability'], output, sqlIdentifier)).toEqual(
          output === codec ? { rowGroupRows: ROWS } : { refused: `an input column is not compressed with ${output}` },
        );
    }
  });

  it('the kept columns must be every input column as it is, in order; the largest group sets the size', async () => {
    const input = await write('layout.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048');
    const kept = INPUT_COLUMNS.map((name) => `i.${sqlIdentifier(name)}`);
    const layout = (k: string[]) => parquetStitchLayout(input, k, ['fraud_probability'], 'snappy', sqlIdentifier);
    expect(layout(kept)).toEqual({ rowGroupRows: 2_048 });
    const notKept = { refused: 'the output does not keep every input column as it is' };
    expect(layout(kept.slice(1))).toEqual(notKept);
    expect(layout([kept[1]!, kept[0]!, ...kept.slice(2)])).toEqual(notKept);
    expect(layout([`TRY_CAST(${kept[0]} AS DOUBLE) AS transaction_id`, ...kept.slice(1)])).toEqual(notKept);
    // An encrypted footer (FileMetaData field 8) is refused.
    const encrypted = path('layout-encrypted.parquet');
    copyFileSync(input, encrypted);
    rewriteFooter(encrypted, (fields) => fields.push({ id: 8, value: { type: THRIFT.STRUCT, fields: [] } }));
    expect(
      parquetStitchLayout(encrypted, kept, ['fraud_probability'], 'snappy', sqlIdentifier) as { refused: string },
    ).toEqual({ refused: expect.stringMatching(/FileMetaData field 8/) });
  });
});

describe('a row group of no rows: every column rewritten', () => {
  // Some writers end a file so; the prediction COPY writes no such group, so the files could not align: refused before
  // anything is scored.
  for (const halves of ['off', 'on'] as const)
    it(`a last row group of no rows, halves ${halves}`, async () => {
      const input = path(`empty-last-${halves}.parquet`);
      // Groups of 4,000 rows are written as two files joined; the empty group is the last group's copy with 0 rows.
      const four = await write(`four-a-${halves}.parquet`, 'SELECT * FROM {g} WHERE transaction_id < 4000');
      appendParquetFile(
        four,
        await write(
          `four-b-${halves}.parquet`,
          'SELECT * FROM {g} WHERE transaction_id >= 4000 AND transaction_id < 8000',
        ),
      );
      copyFileSync(four, input);
      rewriteFooter(input, (fields) => {
        const groups = listItems(field(fields, 4));
        const empty = structuredClone(groups.at(-1)!);
        const emptyFields = structFields(empty);
        for (const f of emptyFields) if (f.id === 3 && 'value' in f.value) f.value.value = 0n;
        for (const chunk of listItems(field(emptyFields, 1)))
          for (const f of structFields(field(structFields(chunk), 3)))
            if (f.id === 5 && 'value' in f.value) f.value.value = 0n;
        groups.push(empty);
      });
      expect(parquetRowGroupRows(input)).toEqual([4_000, 4_000, 0]);
      const output = path(`empty-last-${halves}-out.parquet`);
      const off = path(`empty-last-${halves}-off.parquet`);
      const run = score(input, output, halves);
      expect(run).toMatchObject({
        stitched: false,
        summary: { rows: 8_000, outputRows: 8_000, errors: 0, path: 'one-pass' },
      });
      expect(run.stderr).toContain('[batch] every column rewritten: an empty row group\n');
      expect(run.stderr).not.toContain('could not be stitched');
      score(input, off, halves, { CALIPER_BATCH_STITCH: 'off' });
      await sameRowsAndTypes(output, off);
      await keptRowsAreTheInput(input, output);
      if (halves === 'off') expect(readFileSync(output).equals(readFileSync(off))).toBe(true);
      expect(temporaries()).toEqual([]);
    });
});

/** Each row group's file_offset, where the footer of `file` has one. */
function rowGroupFileOffsets(file: string): bigint[] {
  return listItems(field(decodeThriftStruct(footerOf(file).bytes), 4)).flatMap((group) => {
    const offset = field(structFields(group), 5);
    return offset ? [integer(offset)] : [];
  });
}

describe('a row the one pass cannot score', () => {
  it('the job keeps the parts path, as with every column rewritten; nothing left behind', async () => {
    const input = await write(
      'bad-row.parquet',
      `SELECT * REPLACE (CASE WHEN transaction_id = 9000 THEN 'casino' ELSE merchant_category END AS merchant_category) FROM {g}`,
      'ROW_GROUP_SIZE 2048',
    );
    const output = path('bad-row-out.parquet');
    const off = path('bad-row-off.parquet');
    const expected = { rows: ROWS, outputRows: ROWS - 1, errors: 1, path: 'parts' };
    expect(score(input, output, 'on')).toMatchObject({ stitched: false, summary: expected });
    expect(score(input, off, 'on', { CALIPER_BATCH_STITCH: 'off' })).toMatchObject({ summary: expected });
    await sameRowsAndTypes(output, off);
    const errors = readFileSync(`${output}.errors.jsonl`, 'utf8').trimEnd().split('\n');
    expect(errors.map((line) => (JSON.parse(line) as { row: number }).row)).toEqual([9_001]);
    expect(temporaries()).toEqual([]);
  });
});

describe('stitchParquet', () => {
  /** Prediction columns of rows [from, to) of `input`, written as the job writes them (one thread, `groupRows`). */
  async function predictions(
    name: string,
    input: string,
    from: number,
    to: number,
    groupRows: number,
    columns = `transaction_amount * 2 AS doubled, upper(merchant_category) AS "Category!"`,
    options = '',
  ): Promise<string> {
    const out = path(name);
    await query(
      `SET threads = 1; COPY (SELECT ${columns} FROM read_parquet('${input}', file_row_number = true) WHERE file_row_number >= ${from} AND file_row_number < ${to}) TO '${out}' (FORMAT parquet, ROW_GROUP_SIZE ${groupRows}${options})`,
    );
    return out;
  }

  /** What `input` stitched to the default predictions() holds, as DuckDB writes it. */
  async function expected(name: string, input: string): Promise<string> {
    const out = path(name);
    await query(
      `COPY (SELECT *, transaction_amount * 2 AS doubled, upper(merchant_category) AS "Category!" FROM read_parquet('${input}')) TO '${out}' (FORMAT parquet)`,
    );
    return out;
  }

  it('one prediction file or two: the rows of both in order; every chunk where the footer says', async () => {
    const input = await write('direct.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048');
    const whole = await predictions('direct-pred.parquet', input, 0, ROWS, 2_048);
    const a = await predictions('direct-pred-a.parquet', input, 0, 3 * 2_048, 2_048);
    const b = await predictions('direct-pred-b.parquet', input, 3 * 2_048, ROWS, 2_048);
    const reference = await expected('direct-expected.parquet', input);
    for (const [name, files] of [
      ['one', [whole]],
      ['two', [a, b]],
    ] as const) {
      const target = path(`direct-${name}.parquet`);
      expect(stitchParquet(input, files, target)).toEqual({ rows: ROWS, rowGroups: GROUPS.length });
      await sameRowsAndTypes(target, reference);
      await inputChunksKept(input, target);
      footerConsistent(target);
      expect(parquetRowGroupRows(target)).toEqual(GROUPS);
      expect(rowGroupFileOffsets(target)).toEqual(rowGroupFileOffsets(input));
      expect(rowGroupFileOffsets(input)).toHaveLength(GROUPS.length);
      // Each prediction chunk's bytes are its file's, moved by where that file's data now lies.
      const out = readFileSync(target);
      let delta = footerOf(input).start - 4;
      let group = 0;
      for (const file of files) {
        const bytes = readFileSync(file);
        for (const chunk of await chunksOf(file)) {
          const first = Number((chunk.dictionary_page_offset ?? chunk.data_page_offset) as bigint);
          const size = Number(chunk.total_compressed_size as bigint);
          const [moved] = await chunksOf(
            target,
            `WHERE row_group_id = ${group + Number(chunk.row_group_id as bigint)} AND column_id = ${4 + Number(chunk.column_id as bigint)}`,
          );
          expect(Number((moved!.dictionary_page_offset ?? moved!.data_page_offset) as bigint)).toBe(first + delta);
          expect(out.subarray(first + delta, first + delta + size).equals(bytes.subarray(first, first + size))).toBe(
            true,
          );
        }
        group += parquetRowGroupRows(file).length;
        delta += footerOf(file).start - 4;
      }
    }
  });

  it("inputCopied: the target already holds the input's copy, its footer replaced", async () => {
    const input = await write('copied.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048');
    const preds = await predictions('copied-pred.parquet', input, 0, ROWS, 2_048);
    const target = path('copied-out.parquet');
    copyFileSync(input, target);
    stitchParquet(input, [preds], target, true);
    await sameRowsAndTypes(target, await expected('copied-expected.parquet', input));
    footerConsistent(target);
  });

  it("prediction files that do not align with the input's row groups: ParquetJoinError, the target untouched", async () => {
    const input = await write('misaligned.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048');
    const cases: [string, string[], RegExp][] = [
      [
        'groups of 4,096 rows',
        [await predictions('mis-4096.parquet', input, 0, ROWS, 4_096)],
        /\(4096, 4096, 3808\) do not align with the input's \(2048, 2048, 2048, 2048, 2048, 1760\)/,
      ],
      [
        'rows missing',
        [await predictions('mis-short.parquet', input, 0, 10_000, 2_048)],
        /\(2048, 2048, 2048, 2048, 1808\) do not align/,
      ],
      [
        'the last two row groups missing',
        [await predictions('mis-fewer.parquet', input, 0, 4 * 2_048, 2_048)],
        /\(2048, 2048, 2048, 2048\) do not align/,
      ],
      [
        'halves cut inside a row group',
        [
          await predictions('mis-a.parquet', input, 0, 5_000, 2_048),
          await predictions('mis-b.parquet', input, 5_000, ROWS, 2_048),
        ],
        /do not align/,
      ],
      [
        'halves of other columns',
        [
          await predictions('mis-schema-a.parquet', input, 0, 6_144, 2_048),
          await predictions('mis-schema-b.parquet', input, 6_144, ROWS, 2_048, 'transaction_amount * 3 AS tripled'),
        ],
        /the prediction files differ in schema/,
      ],
    ];
    const notParquet = path('mis-not.parquet');
    writeFileSync(notParquet, 'not parquet at all');
    cases.push(['not a Parquet file', [notParquet], /not a Parquet file/]);
    const before = readFileSync(input);
    for (const [what, files, why] of cases) {
      const absent = path('mis-absent.parquet');
      expect(() => stitchParquet(input, files, absent), what).toThrow(ParquetJoinError);
      expect(() => stitchParquet(input, files, absent), what).toThrow(why);
      expect(existsSync(absent), what).toBe(false);
      const previous = path('mis-previous.parquet');
      writeFileSync(previous, 'a previous output');
      expect(() => stitchParquet(input, files, previous), what).toThrow(ParquetJoinError);
      expect(readFileSync(previous, 'utf8'), what).toBe('a previous output');
      const copied = path('mis-copied.parquet');
      copyFileSync(input, copied);
      expect(() => stitchParquet(input, files, copied, true), what).toThrow(ParquetJoinError);
      expect(readFileSync(copied).equals(before), what).toBe(true);
      expect(readFileSync(input).equals(before), what).toBe(true);
    }
  });

  it("the input's row-group ordinals, column orders and writer's name are carried; a footer without column orders gets none", async () => {
    const input = path('ordinals.parquet');
    copyFileSync(await write('ordinals-src.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048'), input);
    // DuckDB writes no ordinals nor sorting columns: the input is given them (as a writer that does), and no
    // column_orders.
    const sortedBy = (i: number): ThriftField => ({
      id: 4,
      value: {
        type: THRIFT.LIST,
        elementType: THRIFT.STRUCT,
        items: [
          {
            type: THRIFT.STRUCT,
            fields: [
              { id: 1, value: { type: THRIFT.I32, value: BigInt(i % 4) } },
              { id: 2, value: { type: THRIFT.FALSE } },
              { id: 3, value: { type: THRIFT.TRUE } },
            ],
          },
        ],
      },
    });
    rewriteFooter(input, (fields) => {
      listItems(field(fields, 4)).forEach((group, i) => {
        const groupFields = structFields(group);
        groupFields.push(sortedBy(i), { id: 7, value: { type: THRIFT.I16, value: BigInt(i) } });
        groupFields.sort((x, y) => x.id - y.id);
      });
      const orders = fields.findIndex((f) => f.id === 7);
      expect(orders).toBeGreaterThan(0);
      fields.splice(orders, 1);
      // Another writer's name (readers judge its chunks' statistics by it).
      const createdBy = fields.find((f) => f.id === 6)!;
      createdBy.value = { type: THRIFT.BINARY, bytes: Buffer.from('parquet-cpp-arrow version 14.0.2') };
    });
    const preds = await predictions('ordinals-pred.parquet', input, 0, ROWS, 2_048);
    const target = path('ordinals-out.parquet');
    stitchParquet(input, [preds], target);
    const meta = decodeThriftStruct(footerOf(target).bytes);
    const groups = listItems(field(meta, 4)).map(structFields);
    expect(groups.map((group) => integer(field(group, 7)))).toEqual(GROUPS.map((_, i) => BigInt(i)));
    expect(groups.map((group) => field(group, 4))).toEqual(GROUPS.map((_, i) => sortedBy(i).value));
    expect(field(meta, 7)).toBeUndefined();
    const [writer] = await query(`SELECT created_by FROM parquet_file_metadata('${target}')`);
    expect(writer).toEqual({ created_by: 'parquet-cpp-arrow version 14.0.2' });
    footerConsistent(target);
    await sameRowsAndTypes(target, await expected('ordinals-expected.parquet', input));
    // With both files' column orders: one per leaf, the input's then the predictions'.
    const plain = await write('orders.parquet', 'SELECT * FROM {g}', 'ROW_GROUP_SIZE 2048');
    const withOrders = path('orders-out.parquet');
    stitchParquet(plain, [await predictions('orders-pred.parquet', plain, 0, ROWS, 2_048)], withOrders);
    expect(listItems(field(decodeThriftStruct(footerOf(withOrders).bytes), 7)).length).toBe(6);
    footerConsistent(withOrders);
  });

  it("key/value metadata: the input's less ARROW:schema and pandas, then the prediction file's new keys", async () => {
    const input = await write(
      'kv-direct.parquet',
      'SELECT * FROM {g}',
      `ROW_GROUP_SIZE 2048, KV_METADATA {'ARROW:schema': 'x', pandas: '{}', owner: 'me'}`,
    );
    const preds = await predictions(
      'kv-direct-pred.parquet',
      input,
      0,
      ROWS,
      2_048,
      undefined,
      `, KV_METADATA {owner: 'them', extra: 'x'}`,
    );
    const target = path('kv-direct-out.parquet');
    stitchParquet(input, [preds], target);
    const kv = await query(
      `SELECT decode(key) AS key, decode(value) AS value FROM parquet_kv_metadata('${target}') ORDER BY key`,
    );
    expect(kv).toEqual([
      { key: 'extra', value: 'x' },
      { key: 'owner', value: 'me' },
    ]);
    footerConsistent(target);
  });
});

describe('what readers see in a stitched output', () => {
  it("key/value metadata: the input's own entries kept, ARROW:schema and pandas left out", async () => {
    const input = await write(
      'kv.parquet',
      'SELECT * FROM {g}',
      `ROW_GROUP_SIZE 2048, KV_METADATA {'ARROW:schema': '/////w==', pandas: '{"columns": []}', owner: 'me'}`,
    );
    const keys = await query(`SELECT decode(key) AS key FROM parquet_kv_metadata('${input}') ORDER BY key`);
    expect(keys.map((k) => k.key)).toEqual(['ARROW:schema', 'owner', 'pandas']);
    const output = path('kv-out.parquet');
    expect(score(input, output, 'off').stitched).toBe(true);
    expect(
      await query(`SELECT decode(key) AS key, decode(value) AS value FROM parquet_kv_metadata('${output}')`),
    ).toEqual([{ key: 'owner', value: 'me' }]);
    await keptRowsAreTheInput(input, output);
  });

  it('bloom filters of a prediction and of a kept column probe right; filters on kept columns find their rows', async () => {
    // Amounts of two values (777 only in row group 3): few distinct predictions, dictionary-encoded with a bloom
    // filter per row group; `tag` names each row's group.
    const input = await write(
      'bloom.parquet',
      `SELECT transaction_id,
         (CASE WHEN transaction_id // 2048 = 3 AND transaction_id % 2 = 0 THEN 777 ELSE 10 + 10 * (transaction_id % 2) END)::DOUBLE AS transaction_amount,
         merchant_category, 60::DOUBLE AS time_since_last_txn, 'tag-' || (transaction_id // 2048) AS tag
       FROM {g}`,
      'ROW_GROUP_SIZE 2048',
    );
    const stitched = path('bloom-stitched.parquet');
    const rewritten = path('bloom-rewritten.parquet');
    expect(score(input, stitched, 'on').stitched).toBe(true);
    score(input, rewritten, 'off', { CALIPER_BATCH_STITCH: 'off' });
    await sameRowsAndTypes(stitched, rewritten);
    const blooms = await query(
      `SELECT count(*)::INTEGER AS n FROM parquet_metadata('${stitched}') WHERE path_in_schema = 'fraud_probability' AND bloom_filter_offset IS NOT NULL`,
    );
    expect(blooms).toEqual([{ n: GROUPS.length }]);
    // A prediction only rows of group 3 have.
    const [marked] = await query(
      `SELECT fraud_probability AS p, count(*)::INTEGER AS n FROM read_parquet('${stitched}') WHERE transaction_amount = 777 GROUP BY ALL ORDER BY n DESC LIMIT 1`,
    );
    const p = marked!.p as number;
    const [elsewhere] = await query(
      `SELECT count(*)::INTEGER AS n FROM read_parquet('${stitched}') WHERE transaction_amount <> 777 AND fraud_probability = '${p}'::DOUBLE`,
    );
    expect(elsewhere).toEqual({ n: 0 });
    const probe = async (column: string, value: string): Promise<boolean[]> =>
      (
        await query(
          `SELECT bloom_filter_excludes AS excludes FROM parquet_bloom_probe('${stitched}', '${column}', ${value}) ORDER BY row_group_id`,
        )
      ).map((r) => r.excludes as boolean);
    const onlyGroup3 = GROUPS.map((_, g) => g !== 3);
    expect(await probe('fraud_probability', `'${p}'::DOUBLE`)).toEqual(onlyGroup3);
    expect(await probe('fraud_probability', `'0.123456789'::DOUBLE`)).toEqual(GROUPS.map(() => true));
    expect(await probe('tag', `'tag-3'`)).toEqual(onlyGroup3);
    // Filters DuckDB pushes into the scan (statistics, bloom filters): the same rows as the rewritten output's.
    for (const where of [
      `fraud_probability = '${p}'::DOUBLE`,
      `tag = 'tag-3' AND merchant_category = 'travel'`,
      'transaction_id BETWEEN 4000 AND 4100',
      `is_fraud AND tag = 'tag-5'`,
    ]) {
      const rows = (file: string) =>
        query(`SELECT * FROM read_parquet('${file}') WHERE ${where} ORDER BY transaction_id`);
      const found = await rows(stitched);
      expect(found, where).toEqual(await rows(rewritten));
      if (!where.startsWith('is_fraud')) expect(found.length, where).toBeGreaterThan(0);
    }
    const [count] = await query(
      `SELECT count(*)::INTEGER AS n, min(transaction_id)::INTEGER AS lo, max(transaction_id)::INTEGER AS hi FROM read_parquet('${stitched}') WHERE fraud_probability = '${p}'::DOUBLE`,
    );
    expect(count).toMatchObject({ n: marked!.n });
    expect((count!.lo as number) >= 6_144 && (count!.hi as number) < 8_192).toBe(true);
  });

  it('an independent reader (hyparquet) reads the same values as DuckDB', async () => {
    const input = await write(
      'reader.parquet',
      `SELECT transaction_id AS "id with space", transaction_amount, merchant_category, time_since_last_txn,
         CASE WHEN transaction_id % 5 = 0 THEN NULL ELSE 'naïve ' || transaction_id END AS "naïve 列",
         CASE WHEN transaction_id % 13 = 0 THEN NULL ELSE {'a': transaction_id, 'b': [transaction_id, NULL]} END AS s,
         CASE WHEN transaction_id % 4 = 0 THEN NULL ELSE MAP {merchant_category: transaction_id} END AS m
       FROM {g}`,
      'ROW_GROUP_SIZE 2048',
    );
    const output = path('reader-out.parquet');
    expect(score(input, output, 'on').stitched).toBe(true);
    const bytes = readFileSync(output);
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const metadata = parquetMetadata(file);
    expect(metadata.num_rows).toBe(BigInt(ROWS));
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).toEqual(GROUPS);
    const read = await parquetReadObjects({ file });
    const normalized = JSON.parse(JSON.stringify(read, (_, v) => (typeof v === 'bigint' ? Number(v) : v)));
    const duckdb = (await query(`SELECT to_json(t)::VARCHAR AS j FROM read_parquet('${output}') t`)).map((r) =>
      JSON.parse(r.j as string),
    );
    expect(normalized.length).toBe(ROWS);
    expect(Object.keys(normalized[0])).toEqual([
      'id with space',
      ...INPUT_COLUMNS.slice(1),
      'naïve 列',
      's',
      'm',
      'fraud_probability',
      'is_fraud',
    ]);
    expect(normalized).toEqual(duckdb);
  });
});

describe('a stitched job killed with -9', () => {
  it('leaves no output; the rerun removes its temporaries and writes every row once, in order', async () => {
    const input = await generateFraudData({ rows: 300_000, out: path('kill-in.parquet'), seed: 62 });
    const output = path('kill-out.parquet');
    const env = { ...process.env, CALIPER_BATCH_PROFILE: '1', CALIPER_BATCH_HALVES_BYTES: '1' };
    const child = spawn(
      process.execPath,
      [CALIPER_CLI, 'batch', '--model', model, '--input', input, '--output', output],
      {
        stdio: 'ignore',
        env,
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // The input's copy (the output's temporary) and the prediction files appear as the COPYs start.
    const deadline = Date.now() + 120_000;
    while (!temporaries().some((f) => f.startsWith('.kill-out.parquet.tmp-'))) {
      if (child.exitCode !== null) throw new Error(`batch exited before writing (${child.exitCode})`);
      if (Date.now() > deadline) throw new Error('the stitched job never started writing within 120 s');
      await new Promise((r) => setTimeout(r, 2));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe(null);
    expect(existsSync(output)).toBe(false);
    const rerun = score(input, output, 'on');
    expect(rerun).toMatchObject({ stitched: true, summary: { rows: 300_000, outputRows: 300_000, errors: 0 } });
    expect(temporaries()).toEqual([]);
    const off = path('kill-off.parquet');
    score(input, off, 'on', { CALIPER_BATCH_STITCH: 'off' });
    await sameRowsAndTypes(output, off);
    await keptRowsAreTheInput(input, output);
  }, 240_000);
});
