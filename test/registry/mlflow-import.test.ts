import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { importMlflowModel } from '../../src/registry/mlflow-model.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startServing } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from './registry-fixture.ts';

/** An MLflow model folder as mlflow.onnx.save_model writes it: MLmodel (YAML, the signature as JSON strings) and model.onnx. */
function mlflowFolder(fixture: RegistryFixture, name: string, signatureInputs: unknown, flavors = 'onnx'): string {
  const dir = join(fixture.dir, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(FRAUD_ONNX, join(dir, 'model.onnx'));
  const onnxFlavor =
    flavors === 'onnx'
      ? `  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.16.0\n    providers:\n    - CPUExecutionProvider\n`
      : '';
  writeFileSync(
    join(dir, 'MLmodel'),
    `artifact_path: model
flavors:
${onnxFlavor}  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.9
mlflow_version: 2.17.0
model_size_bytes: 1337
model_uuid: 5c1e0e3f7a2b4c1d9e8f7a6b5c4d3e2f
run_id: 0a1b2c3d4e5f
signature:
  inputs: '${JSON.stringify(signatureInputs)}'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}]'
  params: null
utc_time_created: '2026-11-02 10:00:00.000000'
`,
  );
  return dir;
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected a rejection');
}

describe('caliper models import-mlflow', () => {
  const fixture = new RegistryFixture();
  const registry = ModelRegistry.open(fixture.home);
  afterAll(async () => {
    await registry.close();
    fixture.remove();
  });

  it('registers an ONNX-flavour model with its tensor signature as the request schema, and it serves', async () => {
    const dir = mlflowFolder(fixture, 'tensor', [
      { type: 'tensor', 'tensor-spec': { dtype: 'float32', shape: [-1, 10] }, name: 'features' },
    ]);
    const version = await importMlflowModel(registry, { path: dir, name: 'mlflow_fraud', actor: 'test' });
    expect(version).toMatchObject({
      name: 'mlflow_fraud',
      version: 1,
      tags: {
        'mlflow.run_id': '0a1b2c3d4e5f',
        'mlflow.model_uuid': '5c1e0e3f7a2b4c1d9e8f7a6b5c4d3e2f',
        'mlflow.mlflow_version': '2.17.0',
      },
    });
    expect(version.source).toBe(join(dir, 'model.onnx'));
    await registry.setStage('mlflow_fraud', 1, 'Production', { actor: 'test' });

    const server = await startServing({
      paths: [],
      modelUris: ['models:/mlflow_fraud/Production'],
      registry: fixture.home,
      port: 0,
      logger: quietLogger(),
    });
    try {
      const ok = await fetch(`${server.url}/models/mlflow_fraud/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ features: [1, 0.5, 0, 0, 1, 0, 0, 0, 0, 0] }),
      });
      expect(ok.status).toBe(200);
      const body = (await ok.json()) as { fraud_probability: unknown; model_version: string };
      expect(body.model_version).toBe('1');
      expect(JSON.stringify(body.fraud_probability)).toMatch(/\d/);
      const short = await fetch(`${server.url}/models/mlflow_fraud/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ features: [1, 2] }),
      });
      expect(short.status).toBe(400);
      expect(JSON.stringify(await short.json())).toContain('features');
    } finally {
      await server.close();
    }
  });

  it('stacks a column signature (named doubles) into the model input in signature order', async () => {
    const columns = Array.from({ length: 10 }, (_, i) => ({ type: 'double', name: `c${i}`, required: true }));
    const version = await importMlflowModel(registry, {
      path: mlflowFolder(fixture, 'columns', columns),
      name: 'mlflow_columns',
      actor: 'test',
    });
    const config = registry.configOf(version);
    expect(config.inputs.map((i) => [i.name, i.type])).toEqual(columns.map((c) => [c.name, 'number']));
    expect(config.tensors).toEqual([
      expect.objectContaining({
        name: 'features',
        dtype: 'float32',
        columns: columns.map((c) => expect.objectContaining({ field: c.name })),
      }),
    ]);
  });

  it('lets a model.yaml beside MLmodel (or --config) say otherwise: its request schema wins', async () => {
    const dir = mlflowFolder(fixture, 'with-yaml', [
      { type: 'tensor', 'tensor-spec': { dtype: 'float32', shape: [-1, 10] }, name: 'features' },
    ]);
    copyFileSync(FRAUD_YAML, join(dir, 'model.yaml'));
    const version = await importMlflowModel(registry, {
      path: join(dir, 'MLmodel'),
      name: 'mlflow_yaml',
      actor: 'test',
    });
    expect(registry.configOf(version).inputs.map((i) => i.name)).toEqual([
      'transaction_amount',
      'merchant_category',
      'time_since_last_txn',
    ]);
  });

  it('refuses a model without the ONNX flavour, a missing MLmodel and an unusable signature, naming the field', async () => {
    const sklearn = mlflowFolder(fixture, 'sklearn', [], 'sklearn');
    expect(await rejection(importMlflowModel(registry, { path: sklearn, name: 'x' }))).toMatch(
      /^CALIPER_INVALID_INPUT: .*MLmodel: flavors\.onnx: this model has no ONNX flavour \(flavours: python_function\)/,
    );
    expect(await rejection(importMlflowModel(registry, { path: join(fixture.dir, 'nowhere'), name: 'x' }))).toMatch(
      /^CALIPER_NOT_FOUND: .*nowhere: no MLmodel file/,
    );
    const mixed = mlflowFolder(fixture, 'strings', [{ type: 'string', name: 'merchant' }]);
    expect(await rejection(importMlflowModel(registry, { path: mixed, name: 'x' }))).toMatch(
      /^CALIPER_INVALID_INPUT: .*signature\.inputs\.merchant: column type string cannot be stacked into the float32 tensor features; pass --config model\.yaml/,
    );
    const wrongWidth = mlflowFolder(fixture, 'narrow', [
      { type: 'tensor', 'tensor-spec': { dtype: 'float32', shape: [-1, 9] }, name: 'features' },
    ]);
    expect(await rejection(importMlflowModel(registry, { path: wrongWidth, name: 'x' }))).toMatch(
      /^CALIPER_MODEL_LOAD_FAILED: .*features/,
    );
    await expect(registry.model('x')).rejects.toThrow(/not registered/);
  });
});
