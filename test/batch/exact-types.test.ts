import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { columnarPlanFor } from '../../src/batch/columnar/columnar-part.ts';
import { OutputLayout } from '../../src/batch/io/output-layout.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-exact-types');
let model: string;
let input: string;
let keptColumns: string[];

/**
 * Every DuckDB type (DuckDB's own test_all_types(): minimum, maximum and null rows), as a Parquet file holds them.
 * Left out: UNION, which Parquet stores as a struct with an unnamed field, a type SQL cannot declare.
 */
beforeAll(async () => {
  model = fraudModelDir(root.dir);
  input = join(root.dir, 'all-types.parquet');
  await query(`COPY (
    SELECT t.* EXCLUDE ("union"), (10 * row_number() OVER ())::DOUBLE AS transaction_amount, 'grocery' AS merchant_category, 60::DOUBLE AS time_since_last_txn
    FROM test_all_types() t
  ) TO '${input}' (FORMAT parquet)`);
  keptColumns = (await query(`DESCRIBE SELECT * FROM read_parquet('${input}')`)).map((c) => c.column_name as string);
});

afterAll(() => root.remove());

const typesOf = async (file: string): Promise<Record<string, string>> =>
  Object.fromEntries(
    (await query(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).map((c) => [c.column_name, c.column_type]),
  );

describe("caliper batch keeps every kept column's exact type and value in Parquet output", () => {
  it('takes the columnar path for such a file (the kept columns are copied by DuckDB)', async () => {
    const version = await loadBatchModel(model);
    try {
      const spec = await planBatchJob(version, request(model, input, join(root.dir, 'probe.parquet')));
      expect(spec.columns.find((c) => c.name === 'timestamp_tz')!.sqlType).toBe('TIMESTAMP WITH TIME ZONE');
      expect(await columnarPlanFor(version, spec, new OutputLayout(spec), 0)).toBeDefined();
    } finally {
      await version.unload();
    }
  });

  for (const path of ['columnar', 'row'] as const) {
    it(`round-trips a Parquet file of every DuckDB type (${path} path)`, async () => {
      const output = join(root.dir, `scored-${path}.parquet`);
      const args = [
        'bin/caliper.js',
        'batch',
        '--model',
        model,
        '--input',
        input,
        '--output',
        output,
        '--no-progress',
        '--json',
        ...(path === 'row' ? ['--row-path'] : []),
      ];
      const { stdout } = await promisify(execFile)('node', args, { env: { ...process.env, TZ: 'America/New_York' } });
      expect(JSON.parse(stdout)).toMatchObject({ rows: 3, errors: 0 });

      const inputTypes = await typesOf(input);
      const outputTypes = await typesOf(output);
      for (const column of keptColumns)
        expect({ column, type: outputTypes[column] }).toEqual({ column, type: inputTypes[column] });
      expect(outputTypes.fraud_probability).toBe('DOUBLE');

      // Value for value, row for row: every kept cell is not distinct from the input's (compared as DuckDB text in UTC).
      const differing =
        await query(`SET TimeZone = 'UTC'; SELECT ${keptColumns.map((c, i) => `count(*) FILTER (WHERE i."${c}"::VARCHAR IS DISTINCT FROM o."${c}"::VARCHAR) AS c${i}`).join(', ')}
        FROM read_parquet('${input}') i POSITIONAL JOIN read_parquet('${output}') o`);
      const counts = Object.fromEntries(keptColumns.map((c, i) => [c, Number(differing[0]![`c${i}`])]));
      expect(Object.entries(counts).filter(([, n]) => n > 0)).toEqual([]);
    });
  }
});
