import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { ErrorPolicy } from '../../src/batch/chunk-scorer.ts';
import { readColumnBatch } from '../../src/batch/columnar/column-batch.ts';
import { columnarPlanFor } from '../../src/batch/columnar/columnar-part.ts';
import { OutputLayout } from '../../src/batch/io/output-layout.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const ROWS = 3000;
const root = tempRoot('batch-columnar');
let version: ModelVersion;
let model: string;
let input: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
  // About 5% bad rows: null amounts, negative times, unknown categories.
  input = await generateFraudData({ rows: ROWS, out: join(root.dir, 'mixed.parquet'), seed: 5, badFraction: 0.05 });
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

async function score(
  onError: ErrorPolicy,
  rowPath: boolean,
  name: string,
): Promise<{ summary: Record<string, unknown>; output: string }> {
  const output = join(root.dir, `${name}.parquet`);
  const spec = await planBatchJob(version, request(model, input, output, { onError, batchSize: 256, partRows: 1000 }));
  const {
    seconds: _s,
    rowsPerSecond: _r,
    peakRssBytes: _p,
    output: _o,
    errorsFile: _e,
    job: _j,
    ...summary
  } = await runLocalBatch(version, spec, silentProgress, { rowPath });
  return { summary, output };
}

describe('columnar fast path', () => {
  it('applies to the fraud model on Parquet', async () => {
    const spec = await planBatchJob(version, request(model, input, join(root.dir, 'probe.parquet')));
    expect(await columnarPlanFor(version, spec, new OutputLayout(spec), 0)).toBeDefined();
  });

  it('reads a string field as its dictionary code: each category its position, any other text -1, null null', async () => {
    const categories = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];
    const others = ['Grocery', ' travel', 'travel ', 'toys', '', "gro'cery"];
    const values = [...[...categories].reverse(), ...others, null];
    const file = join(root.dir, 'categories.parquet');
    const rows = values.map(
      (v, i) => `(${i + 1}.5::DOUBLE, ${v === null ? 'NULL' : `'${v.replaceAll("'", "''")}'`}, ${i})`,
    );
    await query(
      `COPY (SELECT * FROM (VALUES ${rows.join(', ')}) t(transaction_amount, merchant_category, time_since_last_txn)) TO '${file}' (FORMAT parquet)`,
    );
    const spec = await planBatchJob(version, request(model, file, join(root.dir, 'categories-out.parquet')));
    const plan = (await columnarPlanFor(version, spec, new OutputLayout(spec), 0))!;
    expect(plan.fields.map((f) => f.spec.name)).toEqual([
      'transaction_amount',
      'merchant_category',
      'time_since_last_txn',
    ]);
    const batch = await readColumnBatch(plan, 0, Infinity, values.length);
    expect(batch.rows).toBe(values.length);
    expect([...batch.values[1]!]).toEqual([7, 6, 5, 4, 3, 2, 1, 0, -1, -1, -1, -1, -1, -1, Number.NaN]);
    expect([...batch.values[0]!]).toEqual(values.map((_, i) => i + 1.5));
  });

  for (const policy of ['skip', 'null'] as const) {
    it(`writes the same output and errors as the row path (--on-error ${policy})`, async () => {
      const fast = await score(policy, false, `fast-${policy}`);
      const slow = await score(policy, true, `slow-${policy}`);
      expect(fast.summary).toEqual(slow.summary);
      expect(fast.summary.errors).toBeGreaterThan(50);
      // Kept columns keep their source types on the columnar path; the prediction columns are typed as on the row path.
      const types = async (path: string): Promise<string[]> =>
        (await query(`DESCRIBE SELECT * FROM read_parquet('${path}')`)).map(
          (c) => `${String(c.column_name)} ${String(c.column_type)}`,
        );
      expect(await types(fast.output)).toEqual([...(await types(input)), ...(await types(slow.output)).slice(-2)]);
      // File order, not sorted: the output must keep the input's order.
      const fastRows = await query(`SELECT * FROM read_parquet('${fast.output}')`);
      const slowRows = await query(`SELECT * FROM read_parquet('${slow.output}')`);
      expect(fastRows).toHaveLength(policy === 'skip' ? ROWS - Number(fast.summary.errors) : ROWS);
      expect(fastRows.map((r) => ({ ...r, transaction_id: Number(r.transaction_id) }))).toEqual(
        slowRows.map((r) => ({ ...r, transaction_id: Number(r.transaction_id) })),
      );
      expect(readFileSync(`${fast.output}.errors.jsonl`, 'utf8').replaceAll('fast-', '')).toBe(
        readFileSync(`${slow.output}.errors.jsonl`, 'utf8').replaceAll('slow-', ''),
      );
    });
  }

  it('stops at the same first bad row as the row path (--on-error fail)', async () => {
    const fast = score('fail', false, 'fast-fail');
    const slow = score('fail', true, 'slow-fail');
    const [a, b] = await Promise.allSettled([fast, slow]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    expect(String((a as PromiseRejectedResult).reason)).toBe(String((b as PromiseRejectedResult).reason));
  });
});
