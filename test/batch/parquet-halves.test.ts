import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import {
  appendParquetFile,
  decodeThriftStruct,
  encodeThriftStruct,
  ParquetJoinError,
  type ThriftField,
  type ThriftValue,
} from '../../src/batch/io/parquet-footer.ts';
import { rowGroupCut } from '../../src/batch/io/parquet-halves.ts';
import { batchWithHalves, fraudModelDir, type HalvesRun, query, tempRoot } from './batch-fixtures.ts';

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

const batch = (args: string[], halves: 'on' | 'off' | 'default'): HalvesRun => batchWithHalves(model, args, halves);

/** Rows of `a` not in `b` (EXCEPT ALL, both ways) and rows whose position differs, and each row group's statistics. */
async function sameRowsInOrder(a: string, b: string): Promise<void> {
  const [diff] = await query(
    `SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('${a}') EXCEPT ALL SELECT * FROM read_parquet('${b}')))::INTEGER AS only_a,
            (SELECT count(*) FROM (SELECT * FROM read_parquet('${b}') EXCEPT ALL SELECT * FROM read_parquet('${a}')))::INTEGER AS only_b,
            (SELECT count(*) FROM read_parquet('${a}'))::INTEGER AS n`,
  );
  expect(diff).toMatchObject({ only_a: 0, only_b: 0 });
  const [order] = await query(
    `SELECT count(*) FILTER (WHERE x.transaction_id IS DISTINCT FROM y.transaction_id OR x.fraud_probability IS DISTINCT FROM y.fraud_probability)::INTEGER AS misplaced
     FROM (SELECT * FROM read_parquet('${a}')) x POSITIONAL JOIN (SELECT * FROM read_parquet('${b}')) y`,
  );
  expect(order).toEqual({ misplaced: 0 });
}

const temporaries = (): string[] => readdirSync(root.dir).filter((f) => f.includes('.tmp-'));

describe('a Parquet input scored in two halves side by side', () => {
  for (const [groups, groupRows, rows] of [
    [2, 5_000, 10_000],
    [5, 4_000, 20_000],
    [7, 4_096, 27_000],
  ] as const)
    it(`${groups} row groups: one Parquet file with the rows of one COPY in input order, statistics per row group`, async () => {
      const input = await parquetInput(`in-${groups}.parquet`, rows, groupRows);
      expect(await rowGroups(input)).toBe(groups);
      const halves = join(root.dir, `halves-${groups}.parquet`);
      const one = join(root.dir, `one-${groups}.parquet`);
      const run = batch(['--input', input, '--output', halves], 'on');
      expect(run.halves).toBe(true);
      expect(run.summary).toMatchObject({ rows, outputRows: rows, errors: 0, path: 'one-pass' });
      expect(batch(['--input', input, '--output', one], 'off').halves).toBe(false);
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
    expect(batch(['--input', dirty, '--output', output], 'on')).toMatchObject({
      halves: true,
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
      const env = { ...process.env, CALIPER_BATCH_PROFILE: '1', CALIPER_BATCH_HALVES_BYTES: '1' };
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
      batch(['--input', input, '--output', one], 'off');
      expect(readFileSync(halves).equals(readFileSync(one))).toBe(true);
      expect(temporaries()).toEqual([]);
    }, 120_000);

  it('Ctrl-C while the halves are written: exit 130, no output, no temporaries', async () => {
    const input = join(root.dir, 'large.parquet');
    await generateFraudData({ rows: 600_000, out: input, seed: 48 });
    const output = join(root.dir, 'interrupted.parquet');
    const child = spawn(process.execPath, [CLI, 'batch', '--model', model, '--input', input, '--output', output], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CALIPER_BATCH_PROFILE: '1', CALIPER_BATCH_HALVES_BYTES: '1' },
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

describe('appendParquetFile', () => {
  const footerOf = (path: string): Buffer => {
    const bytes = readFileSync(path);
    const length = bytes.readUInt32LE(bytes.length - 8);
    return bytes.subarray(bytes.length - 8 - length, bytes.length - 8);
  };

  it("DuckDB's footer decodes and encodes back byte for byte", async () => {
    const path = await parquetInput('footer.parquet', 10_000, 3_000);
    const footer = footerOf(path);
    expect(Buffer.from(encodeThriftStruct(decodeThriftStruct(footer))).equals(footer)).toBe(true);
  });

  it('refuses files of other schemas, leaving the first unchanged', async () => {
    const a = await parquetInput('schema-a.parquet', 1_000, 500);
    const b = join(root.dir, 'schema-b.parquet');
    await query(`COPY (SELECT transaction_id FROM read_parquet('${generated}') LIMIT 10) TO '${b}' (FORMAT parquet)`);
    const before = readFileSync(a);
    expect(() => appendParquetFile(a, b)).toThrow(ParquetJoinError);
    expect(readFileSync(a).equals(before)).toBe(true);
    // A second file whose column chunks point at an offset index (pages' absolute offsets the join cannot shift).
    const c = await parquetInput('offset-index.parquet', 1_000, 500);
    const bytes = readFileSync(c);
    const structFields = (v: ThriftValue | undefined): ThriftField[] => (v?.type === 12 ? v.fields : []);
    const listItems = (v: ThriftValue | undefined): ThriftValue[] => (v?.type === 9 ? v.items : []);
    const footer = decodeThriftStruct(footerOf(c));
    for (const group of listItems(footer.find((f) => f.id === 4)?.value))
      for (const chunk of listItems(structFields(group).find((f) => f.id === 1)?.value)) {
        const fields = structFields(chunk);
        fields.push({ id: 4, value: { type: 6, value: 4n } });
        fields.sort((x, y) => x.id - y.id);
      }
    const encoded = encodeThriftStruct(footer);
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(encoded.length, 0);
    tail.write('PAR1', 4, 'latin1');
    const start = bytes.length - 8 - bytes.readUInt32LE(bytes.length - 8);
    writeFileSync(c, Buffer.concat([bytes.subarray(0, start), encoded, tail]));
    expect(() => appendParquetFile(a, c)).toThrow(/offset index/);
    expect(readFileSync(a).equals(before)).toBe(true);
    writeFileSync(join(root.dir, 'not.parquet'), 'not parquet at all');
    expect(() => appendParquetFile(a, join(root.dir, 'not.parquet'))).toThrow(/not a Parquet file/);
  });
});
