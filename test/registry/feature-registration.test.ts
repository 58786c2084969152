import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { resolveModelUri } from '../../src/registry/uri-resolver.ts';
import { RegistryFixture } from './registry-fixture.ts';

const V2_ONNX = 'examples/fraud-detector/2/model.onnx';
const V2_YAML = 'examples/fraud-detector/2/model.yaml';

describe('registering a model whose model.yaml looks up online features', () => {
  const fixture = new RegistryFixture();
  const registry = ModelRegistry.open(fixture.home);
  afterAll(async () => {
    await registry.close();
    fixture.remove();
  });

  it('accepts preprocess columns that name feature fields, with an absolute feature file', async () => {
    const users = resolve('examples/fraud-detector/features/users.csv');
    const text = readFileSync(V2_YAML, 'utf8').replace(/source: .*users\.csv/, `source: ${users}`);
    const record = await registry.register({ file: V2_ONNX, configFile: fixture.file('v2.yaml', text), name: 'fraud', actor: 'test' });
    expect(record.version).toBe(1);
    const resolved = await resolveModelUri('models:/fraud/1', fixture.home);
    expect(resolved.config.features?.fields.map((f) => f.name)).toEqual(expect.arrayContaining(['user_txn_count']));
  });

  it('refuses a relative feature file, which the registry would not store', async () => {
    await expect(registry.register({ file: V2_ONNX, configFile: V2_YAML, name: 'fraud', actor: 'test' }))
      .rejects.toThrow(/features.source: registered models need an absolute path to the feature file, or store: redis/);
  });
});
