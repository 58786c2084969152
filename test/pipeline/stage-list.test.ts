import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { readModelConfig } from '../../src/config/model-config-file.ts';
import { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { runPredict } from '../../src/pipeline/predict-pipeline.ts';
import { STAGES } from '../../src/pipeline/stage-list.ts';
import { PIPELINE_STAGES, serverTimingHeader } from '../../src/pipeline/stage-timings.ts';
import { fraudModelDir, tempRoot } from '../batch/batch-fixtures.ts';

const ORDER = ['validate', 'features', 'cache', 'preprocess', 'queue', 'inference', 'postprocess'];

describe('the stage list', () => {
  it('lists the stages once, in the order validate → features → cache → preprocess → queue → inference → postprocess', () => {
    expect(STAGES.map((s) => s.name)).toEqual(ORDER);
    expect([...PIPELINE_STAGES]).toEqual(ORDER);
    // The order written where the list lives is the order it runs in.
    const source = readFileSync(new URL('../../src/pipeline/stage-list.ts', import.meta.url), 'utf8');
    expect(source).toContain(ORDER.join(' → '));
    expect(serverTimingHeader({ validate: 1, cache: 2, preprocess: 3, total: 6 })).toBe(
      'validate;dur=1.000, cache;dur=2.000, preprocess;dur=3.000, total;dur=6.000',
    );
  });
});

describe('the response cache stage', () => {
  const root = tempRoot('stage-cache');
  let version: ModelVersion;

  beforeAll(async () => {
    // The fraud example with its response cache (model.yaml `cache`), loaded as the server loads it.
    const dir = fraudModelDir(root.dir);
    const config = readModelConfig(dir);
    expect(config.cache.enabled).toBe(true);
    version = await ModelVersion.load(config, 1, join(dir, '1', 'model.onnx'));
  });

  afterAll(async () => {
    await version?.unload();
    root.remove();
  });

  it('answers a repeated request from the cache without running preprocess, the scheduler or postprocess', async () => {
    const preprocess = vi.spyOn(version.preprocessor, 'run');
    const postprocess = vi.spyOn(version.postprocessor, 'run');
    const request = { transaction_amount: 75, merchant_category: 'online', time_since_last_txn: 600 };
    const first = await runPredict(version, request);
    for (const ran of ['validate', 'cache', 'preprocess', 'queue', 'inference', 'postprocess'] as const)
      expect(first.timings[ran], ran).toBeDefined();
    const second = await runPredict(version, { ...request });
    expect(second.predictions).toEqual(first.predictions);
    expect(second.timings.cache).toBeDefined();
    for (const skipped of ['preprocess', 'queue', 'inference', 'postprocess'] as const)
      expect(second.timings[skipped], skipped).toBeUndefined();
    expect(second.batchSize).toBe(0);
    expect(preprocess).toHaveBeenCalledTimes(1);
    expect(postprocess).toHaveBeenCalledTimes(1);
  });
});
