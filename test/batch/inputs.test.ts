import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress, stageInputs } from '../../src/batch/batch-runner.ts';
import { columnarPlanFor } from '../../src/batch/columnar/columnar-part.ts';
import { OutputLayout } from '../../src/batch/io/output-layout.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { runPredict } from '../../src/pipeline/predict-pipeline.ts';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-inputs');
let version: ModelVersion;
let model: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

let counter = 0;
function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Scores a file written with exactly these bytes to JSONL and returns the output rows. */
async function scoreText(name: string, bytes: string | Buffer): Promise<Record<string, unknown>[]> {
  const input = join(root.dir, `${counter++}-${name}`);
  writeFileSync(input, bytes);
  const output = join(root.dir, `${counter++}-out.jsonl`);
  const summary = await runLocalBatch(
    version,
    await planBatchJob(version, request(model, input, output)),
    silentProgress,
  );
  expect(summary.errors).toBe(0);
  return readJsonl(output);
}

async function online(amount: number, category: string, seconds: number): Promise<number> {
  const result = await runPredict(version, {
    transaction_amount: amount,
    merchant_category: category,
    time_since_last_txn: seconds,
  });
  return result.predictions[0]!.fraud_probability as number;
}

const HEADER = 'id,transaction_amount,merchant_category,time_since_last_txn';

describe('CSV quirks are read by DuckDB', () => {
  it('a UTF-8 byte-order mark (Excel) is not part of the first column name', async () => {
    const rows = await scoreText('bom.csv', `\uFEFF${HEADER}\n1,12.5,fuel,60\n`);
    expect(Object.keys(rows[0]!)[0]).toBe('id');
    expect(rows[0]!.fraud_probability as number).toBeCloseTo(await online(12.5, 'fuel', 60), 6);
  });

  it('CRLF line ends', async () => {
    const rows = await scoreText('crlf.csv', `${HEADER}\r\n1,12.5,fuel,60\r\n2,900,jewelry,5\r\n`);
    expect(rows.map((r) => r.merchant_category)).toEqual(['fuel', 'jewelry']);
    expect(rows[1]!.time_since_last_txn).toBe(5);
  });

  it('quoted fields holding commas', async () => {
    const rows = await scoreText('commas.csv', `note,${HEADER}\n"a, b",1,12.5,fuel,60\n`);
    expect(rows[0]!.note).toBe('a, b');
  });

  it('quoted fields holding newlines', async () => {
    const rows = await scoreText('newlines.csv', `note,${HEADER}\n"two\nlines",1,12.5,fuel,60\nplain,2,3,online,7\n`);
    expect(rows.map((r) => r.note)).toEqual(['two\nlines', 'plain']);
  });

  it('doubled quotes inside a quoted field', async () => {
    const rows = await scoreText('quotes.csv', `note,${HEADER}\n"say ""hi""",1,12.5,"fuel",60\n`);
    expect(rows[0]!.note).toBe('say "hi"');
    expect(rows[0]!.merchant_category).toBe('fuel');
  });

  it('blank lines are no rows', async () => {
    const rows = await scoreText('blank.csv', `${HEADER}\n1,12.5,fuel,60\n\n2,3,online,7\n\n`);
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
  });

  it('no newline after the last row', async () => {
    const rows = await scoreText('no-final-newline.csv', `${HEADER}\n1,12.5,fuel,60\n2,3,online,7`);
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
    expect(rows[1]!.fraud_probability as number).toBeCloseTo(await online(3, 'online', 7), 6);
  });

  it('whitespace around header names', async () => {
    const rows = await scoreText(
      'header-space.csv',
      ` id , transaction_amount ,merchant_category, time_since_last_txn\n1,12.5,fuel,60\n`,
    );
    expect(Object.keys(rows[0]!)).toEqual([
      'id',
      'transaction_amount',
      'merchant_category',
      'time_since_last_txn',
      'fraud_probability',
      'is_fraud',
    ]);
  });
});

describe('inputs real pipelines produce', () => {
  it('reads .gz and .zst CSV and JSONL, and scores them on the columnar path', async () => {
    const csv = `${HEADER}\n1,12.5,fuel,60\n2,900,jewelry,5\n`;
    const jsonl =
      '{"id":1,"transaction_amount":12.5,"merchant_category":"fuel","time_since_last_txn":60}\n{"id":2,"transaction_amount":900,"merchant_category":"jewelry","time_since_last_txn":5}\n';
    const dir = join(root.dir, 'compressed');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.csv.gz'), gzipSync(csv));
    writeFileSync(join(dir, 'b.jsonl.gz'), gzipSync(jsonl));
    writeFileSync(join(dir, 'plain.csv'), csv);
    await query(
      `COPY (SELECT * FROM read_csv('${join(dir, 'plain.csv')}')) TO '${join(dir, 'c.csv.zst')}' (FORMAT csv, COMPRESSION zstd)`,
    );
    await query(
      `COPY (SELECT * FROM read_csv('${join(dir, 'plain.csv')}')) TO '${join(dir, 'd.jsonl.zst')}' (FORMAT json, COMPRESSION zstd)`,
    );
    const output = join(root.dir, 'compressed-out.jsonl');
    const spec = await planBatchJob(version, request(model, dir, output));
    expect(spec.inputs.map((f) => f.path.split('/').pop())).toEqual([
      'a.csv.gz',
      'b.jsonl.gz',
      'c.csv.zst',
      'd.jsonl.zst',
      'plain.csv',
    ]);
    const layout = new OutputLayout(spec);
    layout.prepare({ overwrite: false, cleanTemporaries: true });
    await stageInputs(spec, layout);
    for (let i = 0; i < spec.inputs.length; i++) expect(await columnarPlanFor(version, spec, layout, i)).toBeDefined();
    const summary = await runLocalBatch(version, spec, silentProgress);
    expect(summary).toMatchObject({ rows: 10, outputRows: 10, errors: 0 });
    const rows = readJsonl(output);
    const expected = [await online(12.5, 'fuel', 60), await online(900, 'jewelry', 5)];
    rows.forEach((row, i) => expect(row.fraud_probability as number).toBeCloseTo(expected[i % 2]!, 6));
  });

  it('Hive-partitioned folders: the key=value folders are columns, usable as request fields and kept', async () => {
    const dir = join(root.dir, 'hive');
    for (const [category, rows] of [
      ['fuel', '12.5,60\n3,7\n'],
      ['jewelry', '900,5\n'],
    ] as const) {
      mkdirSync(join(dir, `merchant_category=${category}`), { recursive: true });
      writeFileSync(
        join(dir, `merchant_category=${category}`, 'part-0.csv'),
        `transaction_amount,time_since_last_txn\n${rows}`,
      );
    }
    const output = join(root.dir, 'hive-out.jsonl');
    const spec = await planBatchJob(version, request(model, dir, output));
    expect(spec.inputs.every((f) => f.hive)).toBe(true);
    const summary = await runLocalBatch(version, spec, silentProgress);
    expect(summary).toMatchObject({ rows: 3, outputRows: 3, errors: 0 });
    const rows = readJsonl(output);
    expect(rows.map((r) => r.merchant_category)).toEqual(['fuel', 'fuel', 'jewelry']);
    expect(rows[2]!.fraud_probability as number).toBeCloseTo(await online(900, 'jewelry', 5), 6);
  });

  it('Hive-partitioned Parquet is read where it lies, partition column kept', async () => {
    const source = await generateFraudData({ rows: 300, out: join(root.dir, 'hive-src.parquet'), seed: 4 });
    const dir = join(root.dir, 'hive-parquet');
    await query(
      `COPY (SELECT transaction_id, transaction_amount, time_since_last_txn, merchant_category FROM read_parquet('${source}')) TO '${dir}' (FORMAT parquet, PARTITION_BY (merchant_category))`,
    );
    const output = join(root.dir, 'hive-parquet-out.parquet');
    const summary = await runLocalBatch(
      version,
      await planBatchJob(version, request(model, dir, output)),
      silentProgress,
    );
    expect(summary).toMatchObject({ rows: 300, outputRows: 300, errors: 0 });
    const [joined] = await query(
      `SELECT count(*)::INTEGER AS n, max(abs(o.transaction_amount - s.transaction_amount))::DOUBLE AS drift, bool_and(o.merchant_category = s.merchant_category) AS same FROM read_parquet('${output}') o JOIN read_parquet('${source}') s USING (transaction_id)`,
    );
    expect(joined).toEqual({ n: 300, drift: 0, same: true });
  });
});

describe('outputs', () => {
  let input: string;
  beforeAll(async () => {
    input = await generateFraudData({ rows: 2000, out: join(root.dir, 'out-src.csv'), seed: 8 });
  });

  it('--partition-by writes COLUMN=VALUE folders holding every row once', async () => {
    const output = join(root.dir, 'partitioned');
    const summary = await runLocalBatch(
      version,
      await planBatchJob(
        version,
        request(model, input, output, { format: 'parquet', partitionBy: 'merchant_category' }),
      ),
      silentProgress,
    );
    expect(summary).toMatchObject({ rows: 2000, outputRows: 2000, output });
    expect(readdirSync(output).sort()).toEqual(
      ['electronics', 'fuel', 'gaming', 'grocery', 'jewelry', 'online', 'restaurant', 'travel'].map(
        (c) => `merchant_category=${c}`,
      ),
    );
    const [counts] = await query(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT transaction_id)::INTEGER AS ids FROM read_parquet('${output}/*/*.parquet', hive_partitioning = true)`,
    );
    expect(counts).toEqual({ n: 2000, ids: 2000 });
    expect(existsSync(`${output}.parts`)).toBe(false);
  });

  it('--partition-by refuses a column the output does not have', async () => {
    await expect(
      planBatchJob(version, request(model, input, join(root.dir, 'p2'), { partitionBy: 'nope' })),
    ).rejects.toThrow(/--partition-by: no output column nope \(output columns: transaction_id/);
  });

  it('Parquet compression is selectable', async () => {
    for (const compression of ['zstd', 'uncompressed'] as const) {
      const output = join(root.dir, `compressed-${compression}.parquet`);
      await runLocalBatch(
        version,
        await planBatchJob(version, request(model, input, output, { compression })),
        silentProgress,
      );
      const codecs = await query(`SELECT DISTINCT compression FROM parquet_metadata('${output}')`);
      expect(codecs.map((c) => String(c.compression).toLowerCase())).toEqual([compression]);
    }
  });

  it('writes no errors file when no row failed, and removes one left by an earlier run of the output', async () => {
    const output = join(root.dir, 'clean.csv');
    writeFileSync(`${output}.errors.jsonl`, '{"stale": true}\n');
    const summary = await runLocalBatch(
      version,
      await planBatchJob(version, request(model, input, output)),
      silentProgress,
    );
    expect(summary.errors).toBe(0);
    expect(existsSync(`${output}.errors.jsonl`)).toBe(false);
  });

  it('a run that fails before committing anything leaves nothing behind and says so; the corrected command then runs', async () => {
    const bad = join(root.dir, 'first-row-bad.csv');
    writeFileSync(bad, `${HEADER}\n1,,fuel,60\n2,3,online,7\n`);
    const output = join(root.dir, 'failed.parquet');
    await expect(
      runLocalBatch(
        version,
        await planBatchJob(version, request(model, bad, output, { onError: 'fail' })),
        silentProgress,
      ),
    ).rejects.toThrow(/row 1: transaction_amount: .*nothing was written; correct the cause and run the command again/);
    expect(existsSync(output)).toBe(false);
    expect(existsSync(`${output}.parts`)).toBe(false);
    const summary = await runLocalBatch(
      version,
      await planBatchJob(version, request(model, bad, output, { onError: 'skip' })),
      silentProgress,
    );
    expect(summary).toMatchObject({ rows: 2, outputRows: 1, errors: 1 });
  });
});
