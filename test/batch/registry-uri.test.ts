import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, planBatchJob, query, request, tempRoot } from './batch-fixtures.ts';

const root = tempRoot('batch-registry');
afterAll(() => root.remove());

describe('caliper batch --model models:/URI', () => {
  it('scores with the registered version a stage names, pinned to its number in the job', async () => {
    const dir = fraudModelDir(root.dir);
    const home = join(root.dir, 'registry');
    const registry = ModelRegistry.open(home);
    try {
      const registered = await registry.register({
        file: join(dir, '1', 'model.onnx'),
        configFile: join(dir, 'model.yaml'),
        name: 'fraud_detector',
        tags: {},
        metrics: {},
      });
      await registry.setStage(registered.name, registered.version, 'Production');
    } finally {
      await registry.close();
    }
    const uri = 'models:/fraud_detector/Production';
    const version = await loadBatchModel(uri, { registry: home });
    try {
      const input = await generateFraudData({ rows: 300, out: join(root.dir, 'in.csv'), seed: 5 });
      const output = join(root.dir, 'out.parquet');
      const spec = await planBatchJob(version, request(uri, input, output, { registry: home }));
      expect(spec.model).toBe('models:/fraud_detector/1');
      expect(spec.registry).toBe(home);
      const summary = await runLocalBatch(version, spec, silentProgress);
      expect(summary).toMatchObject({ rows: 300, outputRows: 300, errors: 0 });
      const [row] = await query(`SELECT count(fraud_probability)::INTEGER AS n FROM read_parquet('${output}')`);
      expect(row).toEqual({ n: 300 });
    } finally {
      await version.unload();
    }
  });

  it('names the URI when the registry does not know the model', async () => {
    await expect(
      loadBatchModel('models:/nope/Production', { registry: join(root.dir, 'empty-registry') }),
    ).rejects.toThrow(/nope/);
  });
});
