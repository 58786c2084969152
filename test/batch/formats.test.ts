import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { runPredict } from '../../src/pipeline/predict-pipeline.ts';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';

const ROWS = 2500;
const root = tempRoot('batch-formats');
let version: ModelVersion;
let model: string;
const inputs: Record<string, string> = {};

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
  for (const ext of ['parquet', 'csv', 'jsonl'])
    inputs[ext] = await generateFraudData({ rows: ROWS, out: join(root.dir, `in.${ext}`), seed: 3 });
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

/** Output rows as objects, sorted by transaction_id, whatever the format. */
async function readOutput(path: string): Promise<Record<string, unknown>[]> {
  if (path.endsWith('.parquet')) return query(`SELECT * FROM read_parquet('${path}') ORDER BY transaction_id`);
  if (path.endsWith('.jsonl'))
    return readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return query(`SELECT * FROM read_csv('${path}', header = true) ORDER BY transaction_id`);
}

describe('caliper batch formats', () => {
  for (const inFormat of ['parquet', 'csv', 'jsonl']) {
    for (const outFormat of ['parquet', 'csv', 'jsonl']) {
      it(`scores ${inFormat} → ${outFormat} with the online pipeline's predictions`, async () => {
        const output = join(root.dir, `out-${inFormat}-to.${outFormat}`);
        const spec = await planBatchJob(version, request(model, inputs[inFormat]!, output));
        const summary = await runLocalBatch(version, spec, silentProgress);
        expect(summary).toMatchObject({ rows: ROWS, outputRows: ROWS, errors: 0 });
        const rows = await readOutput(output);
        expect(rows).toHaveLength(ROWS);
        expect(rows.map((r) => Number(r.transaction_id))).toEqual(Array.from({ length: ROWS }, (_, i) => i));
        expect(Object.keys(rows[0]!)).toEqual([
          'transaction_id',
          'transaction_amount',
          'merchant_category',
          'time_since_last_txn',
          'fraud_probability',
          'is_fraud',
        ]);
        // Same answers as /predict for a few rows.
        for (const i of [0, 1234, ROWS - 1]) {
          const row = rows[i]!;
          const online = await runPredict(version, {
            transaction_amount: Number(row.transaction_amount),
            merchant_category: row.merchant_category,
            time_since_last_txn: Number(row.time_since_last_txn),
          });
          expect(Number(row.fraud_probability)).toBeCloseTo(online.predictions[0]!.fraud_probability as number, 6);
          expect(String(row.is_fraud)).toBe(String(online.predictions[0]!.is_fraud));
        }
      });
    }
  }

  it('keeps only the --keep columns and maps a renamed column with --map', async () => {
    const input = join(root.dir, 'renamed.jsonl');
    writeFileSync(
      input,
      [
        { id: 'a', amount: 12.5, merchant_category: 'fuel', time_since_last_txn: 60 },
        { id: 'b', amount: 900, merchant_category: 'jewelry', time_since_last_txn: 5 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const output = join(root.dir, 'renamed-out.jsonl');
    const spec = await planBatchJob(
      version,
      request(model, input, output, { keep: ['id'], map: { transaction_amount: 'amount' } }),
    );
    await runLocalBatch(version, spec, silentProgress);
    const rows = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((r) => Object.keys(r))).toEqual([
      ['id', 'fraud_probability', 'is_fraud'],
      ['id', 'fraud_probability', 'is_fraud'],
    ]);
    expect(rows[1]!.fraud_probability as number).toBeGreaterThan(rows[0]!.fraud_probability as number);
  });

  it('reads every data file of a folder and a glob, in name order', async () => {
    const output = join(root.dir, 'glob-out.csv');
    const spec = await planBatchJob(version, request(model, join(root.dir, 'in.*'), output));
    expect(spec.inputs.map((f) => f.format)).toEqual(['csv', 'jsonl', 'parquet']);
    const summary = await runLocalBatch(version, spec, silentProgress);
    expect(summary.outputRows).toBe(3 * ROWS);
  });

  it('refuses a --keep column the input lacks, naming the columns it has', async () => {
    await expect(
      planBatchJob(version, request(model, inputs.csv!, join(root.dir, 'x.csv'), { keep: ['nope'] })),
    ).rejects.toThrow(/--keep: the input has no column nope \(columns: transaction_id, transaction_amount/);
  });
});
