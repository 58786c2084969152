import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/optimize/datasets/dataset.ts';
import { tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { encodeTensor } from '../../src/optimize/onnx/model-io.ts';

const work = mkdtempSync(join(tmpdir(), 'caliper-datasets-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('loadDataset', () => {
  it('reads Fashion-MNIST IDX images scaled to [0, 1] with labels', async () => {
    const data = await loadDataset({ path: 'fashion-mnist:t10k', limit: 100 });
    expect(data.count).toBe(100);
    expect(data.featureShape).toEqual([784]);
    expect(data.features.length).toBe(78_400);
    expect(Math.max(...data.features)).toBeLessThanOrEqual(1);
    expect(data.labels!.length).toBe(100);
    expect(data.labels![0]).toBe(9);
  });

  it('reads Parquet feature columns (scalars and a list column) and string labels', async () => {
    const path = join(work, 'data.parquet');
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(
      `COPY (SELECT i::DOUBLE AS a, [i, i * 2]::FLOAT[] AS v, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END AS label FROM range(5) t(i)) TO '${path}' (FORMAT parquet)`,
    );
    connection.closeSync();
    instance.closeSync();
    const data = await loadDataset(path);
    expect(data.featureShape).toEqual([3]);
    expect(Array.from(data.features.subarray(6, 9))).toEqual([2, 2, 4]);
    expect(data.labelNames).toEqual(['even', 'odd']);
    expect(Array.from(data.labels!)).toEqual([0, 1, 0, 1, 0]);
  });

  it('reads CSV with a named label column and rejects unknown columns', async () => {
    const path = join(work, 'data.csv');
    writeFileSync(path, 'x1,x2,cls\n1,2,0\n3,4,1\n');
    const data = await loadDataset({ path, labelColumn: 'cls' });
    expect(Array.from(data.features)).toEqual([1, 2, 3, 4]);
    expect(Array.from(data.labels!)).toEqual([0, 1]);
    await expect(loadDataset({ path, labelColumn: 'nope' })).rejects.toThrow(
      /no label column nope \(columns: x1, x2, cls\)/,
    );
  });

  it('reads ONNX TensorProto files, alone or as a test_data_set directory', async () => {
    const dir = join(work, 'test_data_set_0');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'input_0.pb'),
      encodeTensor(tensorFromArray('x', [2, 1, 2], Float32Array.from([1, 2, 3, 4]))),
    );
    const data = await loadDataset(dir);
    expect(data.count).toBe(2);
    expect(data.featureShape).toEqual([1, 2]);
    const single = await loadDataset(join(dir, 'input_0.pb'));
    expect(Array.from(single.features)).toEqual([1, 2, 3, 4]);
  });

  it('names the expected formats for an unknown source', async () => {
    await expect(loadDataset(join(work, 'data.xlsx'))).rejects.toThrow(
      /expected fashion-mnist:SPLIT, an IDX file or directory, .parquet, .csv or .pb/,
    );
  });
});
