import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { ErrorPolicy } from '../../src/batch/chunk-scorer.ts';
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
