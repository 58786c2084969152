import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readModelConfig } from '../../src/config/model-config-file.ts';
import { ModelRepository } from '../../src/lifecycle/model-repository.ts';
import { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { runPredict } from '../../src/pipeline/predict-pipeline.ts';
import { fraudModelDir, tempRoot } from '../batch/batch-fixtures.ts';

/**
 * A ModelVersion owns its in-flight leases (acquire/release); ModelRepository.replace swaps a model's versions in one
 * step and hands back the retired ones, which close (retire) only once their last lease is released. The registry
 * follower decides what to load and calls replace: it does not set the served model's fields itself.
 */

const transaction = { transaction_amount: 250, merchant_category: 'travel', time_since_last_txn: 40 };
const root = tempRoot('version-leases');
let first: ModelVersion;
let second: ModelVersion;

beforeAll(async () => {
  const dir = fraudModelDir(root.dir);
  const config = readModelConfig(dir);
  first = await ModelVersion.load(config, 1, join(dir, '1', 'model.onnx'));
  second = await ModelVersion.load(config, 2, join(dir, '1', 'model.onnx'));
});

afterAll(async () => {
  for (const v of [first, second]) if (v && v.state !== 'unloading') await v.unload();
  root.remove();
});

describe('ModelRepository.replace and version leases', () => {
  it('swaps at once, returns the retired version, and closes it only after its last lease is released', async () => {
    const repository = new ModelRepository();
    expect(repository.replace('fraud_detector', { versions: [first], defaultVersion: 1 })).toEqual([]);
    expect(repository.version('fraud_detector')).toBe(first);

    // A request on version 1 holds its lease across the swap.
    first.acquire();
    expect(first.inFlight).toBe(1);
    const retired = repository.replace('fraud_detector', { versions: [second], defaultVersion: 2 });
    expect(retired).toEqual([first]);
    expect(repository.version('fraud_detector')).toBe(second);
    expect([...repository.get('fraud_detector').versions.keys()]).toEqual([2]);

    let closed = false;
    const retiring = first.retire().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    // Still open: the request holding the lease is answered by version 1.
    const answer = await runPredict(first, transaction);
    expect(answer.predictions[0]!.fraud_probability).toBeGreaterThan(0);
    expect(first.state).toBe('ready');

    first.release();
    await retiring;
    expect(closed).toBe(true);
    expect(first.state).toBe('unloading');
    expect(first.inFlight).toBe(0);
    expect(() => first.release()).toThrow(/release\(\) without acquire\(\)/);
  });

  it('an unload stops routing at once and closes the version only after its last in-flight request', async () => {
    const dir = fraudModelDir(root.dir);
    const third = await ModelVersion.load(readModelConfig(dir), 3, join(dir, '1', 'model.onnx'));
    const repository = new ModelRepository();
    repository.replace('fraud_detector', { versions: [third], defaultVersion: 3 });
    third.acquire();
    let unloaded = false;
    const unloading = repository.unloadModel('fraud_detector').then(() => {
      unloaded = true;
    });
    expect(repository.has('fraud_detector')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unloaded).toBe(false);
    // The request already on it is still answered by the version being unloaded.
    const answer = await runPredict(third, transaction);
    expect(answer.predictions[0]!.fraud_probability).toBeGreaterThan(0);
    third.release();
    await unloading;
    expect(unloaded).toBe(true);
    expect(third.state).toBe('unloading');
  });

  it('refuses a default version that is not among the new versions, changing nothing', () => {
    const repository = new ModelRepository();
    repository.replace('fraud_detector', { versions: [second], defaultVersion: 2 });
    expect(() => repository.replace('fraud_detector', { versions: [second], defaultVersion: 7 })).toThrow(
      /default version 7/,
    );
    expect(repository.version('fraud_detector')).toBe(second);
  });
});

describe('the registry follower', () => {
  const source = (file: string): string => readFileSync(join(import.meta.dirname, '../../src', file), 'utf8');

  it('only decides what to load and calls ModelRepository.replace: it sets no field of the served model', () => {
    const follower = source('lifecycle/registry-follower.ts');
    expect(follower).toMatch(/this\.repository\.replace\(/);
    expect(follower).not.toMatch(
      /\.versions\.(set|delete|clear)\(|\.defaultVersion\s*=[^=]|\.traffic\s*=[^=]|\.config\s*=[^=]/,
    );
    expect(follower).not.toMatch(/swapIn|awaitIdle/);
  });

  it('and no wait on in-flight requests is patched in after construction', () => {
    expect(source('server/serving.ts')).not.toMatch(/awaitIdle\s*=/);
    expect(source('lifecycle/model-repository.ts')).not.toMatch(/awaitIdle/);
  });
});
