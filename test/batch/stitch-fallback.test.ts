import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import { ParquetJoinError } from '../../src/batch/io/parquet-footer.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot, withStderr } from './batch-fixtures.ts';

/**
 * A stitched Parquet job whose stitch fails after its predictions were scored (src/batch/columnar/scoring-copy.ts
 * scoreStitched): the job rewrites every column instead, counts each row once and leaves nothing behind. The failures
 * that lead there (prediction files whose row groups do not match the input's, a disk that fills while the files are
 * joined) are refused beforehand where they can be foreseen, so none can be made to happen here on purpose:
 * stitchParquet is replaced by one that refuses as it would.
 */
vi.mock('../../src/batch/io/parquet-stitch.ts', async (original) => {
  const real = await original<typeof import('../../src/batch/io/parquet-stitch.ts')>();
  return {
    ...real,
    stitchParquet: () => {
      throw new ParquetJoinError("the prediction files' row groups (forced) do not align with the input's");
    },
  };
});

const root = tempRoot('batch-stitch-fallback');
let model: string;
let version: ModelVersion;
let input: string;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  version = await loadBatchModel(model);
  const generated = await generateFraudData({ rows: 12_000, out: join(root.dir, 'generated.parquet'), seed: 63 });
  input = join(root.dir, 'in.parquet');
  await query(`COPY (SELECT * FROM read_parquet('${generated}')) TO '${input}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`);
});

afterEach(() => {
  delete process.env.CALIPER_BATCH_HALVES_BYTES;
  delete process.env.CALIPER_BATCH_PROFILE;
  delete process.env.CALIPER_BATCH_SECOND_HALF_THREAD;
});

afterAll(async () => {
  await version.unload();
  root.remove();
});

describe('a stitch that fails after scoring', () => {
  for (const halves of ['on', 'off'] as const)
    it(`halves ${halves}: every column rewritten, each row counted once, nothing left behind`, async () => {
      process.env.CALIPER_BATCH_PROFILE = '1';
      process.env.CALIPER_BATCH_HALVES_BYTES = halves === 'on' ? '1' : 'off';
      const output = join(root.dir, `out-${halves}.parquet`);
      const { result: run, log } = await withStderr(async () =>
        runLocalBatch(version, await planBatchJob(version, request(model, input, output)), silentProgress, {
          onePass: true,
        }),
      );
      expect(log).toContain(
        "[batch] the predictions could not be stitched (the prediction files' row groups (forced) do not align with the input's): every column rewritten",
      );
      expect(log).not.toContain('predictions stitched');
      expect(run).toMatchObject({ rows: 12_000, outputRows: 12_000, rowsThisRun: 12_000, errors: 0, path: 'one-pass' });
      const [check] = await query(
        `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE transaction_id <> pos)::INTEGER AS misplaced,
                count(fraud_probability)::INTEGER AS scored
         FROM (SELECT *, row_number() OVER () - 1 AS pos FROM read_parquet('${output}'))`,
      );
      expect(check).toEqual({ n: 12_000, misplaced: 0, scored: 12_000 });
      // The rewrite's row groups, not the input's 2,048-row ones: the output is DuckDB's, not a stitched file.
      const [groups] = await query(
        `SELECT count(DISTINCT row_group_id)::INTEGER AS n FROM parquet_metadata('${output}')`,
      );
      expect(groups!.n).toBeLessThan(6);
      expect(readdirSync(root.dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    }, 60_000);
});
