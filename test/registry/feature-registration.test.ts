import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { resolveModelUri } from '../../src/registry/uri-resolver.ts';
import { startServing } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
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
    const record = await registry.register({
      file: V2_ONNX,
      configFile: fixture.file('v2.yaml', text),
      name: 'fraud',
      actor: 'test',
    });
    expect(record.version).toBe(1);
    const resolved = await resolveModelUri('models:/fraud/1', fixture.home);
    expect(resolved.config.features?.fields.map((f) => f.name)).toEqual(expect.arrayContaining(['user_txn_count']));
  });

  it('stores a relative feature file and hook module with the version, so it serves after the folder is gone', async () => {
    const source = mkdtempSync(join(tmpdir(), 'caliper-bundle-'));
    cpSync('examples/fraud-detector/2', join(source, '2'), { recursive: true });
    cpSync('examples/fraud-detector/features', join(source, 'features'), { recursive: true });
    writeFileSync(
      join(source, 'hooks.mjs'),
      'export function postprocess(p) { return { ...p, tier: p.fraud_probability > 0.5 ? "review" : "pass" }; }\n',
    );
    // A version folder's model.yaml: its relative paths resolve in the model folder, as when the folder is served.
    cpSync('examples/fraud-detector/model.yaml', join(source, 'model.yaml'));
    writeFileSync(join(source, '2', 'model.yaml'), `${readFileSync(V2_YAML, 'utf8')}\nhooks: ./hooks.mjs\n`);
    const folderServer = await startServing({
      paths: [join('examples/fraud-detector')],
      port: 0,
      logger: quietLogger(),
    });
    const request = JSON.parse(readFileSync('examples/fraud-detector/sample-request-user.json', 'utf8')) as Record<
      string,
      unknown
    >;
    const expected = (await (
      await fetch(`${folderServer.url}/models/fraud_detector/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      })
    ).json()) as { fraud_probability: number };
    await folderServer.close();

    const record = await registry.register({
      file: join(source, '2', 'model.onnx'),
      configFile: join(source, '2', 'model.yaml'),
      name: 'bundled',
      actor: 'test',
    });
    expect(Object.keys(JSON.parse(record.tags['caliper.files']!) as object).sort()).toEqual([
      'features/users.csv',
      'hooks.mjs',
    ]);
    rmSync(source, { recursive: true, force: true });

    const server = await startServing({
      paths: [],
      modelUris: [`models:/bundled/${record.version}`],
      registry: fixture.home,
      port: 0,
      logger: quietLogger(),
    });
    try {
      const answer = (await (
        await fetch(`${server.url}/models/bundled/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(request),
        })
      ).json()) as { fraud_probability: number; tier: string; features_degraded?: boolean };
      // The user's looked-up features (from the bundled file) and the bundled hook shape the answer as from the folder.
      expect(answer.fraud_probability).toBeCloseTo(expected.fraud_probability, 6);
      expect(answer.features_degraded).toBeUndefined();
      expect(answer.tier).toBe(expected.fraud_probability > 0.5 ? 'review' : 'pass');
    } finally {
      await server.close();
    }
  });
});
