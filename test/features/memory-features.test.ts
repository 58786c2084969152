import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntityKeyTemplate } from '../../src/features/entity-key.ts';
import type { FeatureFieldSpec } from '../../src/features/feature-config.ts';
import { MemoryFeatureStore } from '../../src/features/memory-feature-store.ts';
import { ModelRepository } from '../../src/lifecycle/model-repository.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

const root = mkdtempSync(join(tmpdir(), 'caliper-features-'));
const fields: FeatureFieldSpec[] = [
  { name: 'user_txn_count', type: 'integer', default: 0 },
  { name: 'user_avg_amount', type: 'number', default: 0 },
];
const key = EntityKeyTemplate.parse('user:{user_id}', (e) => {
  throw new Error(e);
});
const csv = 'user_id,user_txn_count,user_avg_amount\n007,12,40.5\nu2,,9\nu3,oops,1\n,5,5\n';
const transaction = { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 };
const v2Yaml = readFileSync('examples/fraud-detector/2/model.yaml', 'utf8');

/** The fraud example's version 2 in a temporary folder, with its model.yaml edited. */
function fraudV2(name: string, edit: (yaml: string) => string = (y) => y): string {
  const dir = join(root, name);
  mkdirSync(join(dir, '1'), { recursive: true });
  mkdirSync(join(dir, 'features'), { recursive: true });
  cpSync('examples/fraud-detector/2/model.onnx', join(dir, '1', 'model.onnx'));
  writeFileSync(join(dir, 'features', 'users.csv'), csv);
  writeFileSync(join(dir, 'model.yaml'), edit(v2Yaml));
  return dir;
}

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('memory feature store', () => {
  it('loads a CSV keyed by the template: keys keep their spelling, bad or empty cells become undefined, keyless rows are skipped', async () => {
    const path = join(root, 'users.csv');
    writeFileSync(path, csv);
    const store = await MemoryFeatureStore.fromFile(path, key, fields);
    expect(store.size).toBe(3);
    expect(await store.lookup(['user:007', 'user:7', 'user:u2', 'user:u3'])).toEqual([
      [12, 40.5],
      null,
      [undefined, 9],
      [undefined, 1],
    ]);
  });

  it('loads the same features from Parquet', async () => {
    const path = join(root, 'users.parquet');
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(
      `COPY (SELECT 'u' || i AS user_id, i::BIGINT AS user_txn_count, i * 1.5 AS user_avg_amount FROM range(1, 2001) t(i)) TO '${path}' (FORMAT parquet)`,
    );
    connection.closeSync();
    instance.closeSync();
    const store = await MemoryFeatureStore.fromFile(path, key, fields);
    expect(store.size).toBe(2000);
    expect(await store.lookup(['user:u1', 'user:u2000', 'user:u0'])).toEqual([[1, 1.5], [2000, 3000], null]);
  });

  it('refuses a file without the key or feature columns, naming them', async () => {
    const path = join(root, 'partial.csv');
    writeFileSync(path, 'user_id,user_txn_count\nu1,3\n');
    await expect(MemoryFeatureStore.fromFile(path, key, fields)).rejects.toThrow(
      `${path}: missing column user_avg_amount`,
    );
  });

  it('fails the model load when the source file is missing', async () => {
    const dir = fraudV2('no-file', (y) => y.replace('source: features/users.csv', 'source: features/nope.csv'));
    const repository = new ModelRepository();
    await repository.loadPaths([dir]);
    await repository.close();
    expect(repository.failures[0]!.reason).toMatch(
      /model\.yaml: features\.source: .*features\/nope\.csv: feature file not found/,
    );
  });
});

describe('the features stage in /predict (memory store)', () => {
  let server: RunningServer;
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      timing: response.headers.get('server-timing') ?? '',
      body: (await response.json()) as Record<string, unknown>,
    };
  };

  beforeAll(async () => {
    const strict = fraudV2('strict', (y) =>
      y.replace('name: fraud_detector', 'name: strict').replace('on_missing: defaults', 'on_missing: error'),
    );
    server = await startServing({ paths: [fraudV2('lenient'), strict], port: 0, logger: quietLogger() });
  });
  afterAll(() => server.close());

  it("joins a known user's features (a different answer), uses defaults for unknown or absent users, and times the stage", async () => {
    const known = await post('/models/fraud_detector/predict', { ...transaction, user_id: '007' });
    const unknown = await post('/models/fraud_detector/predict', { ...transaction, user_id: 'nobody' });
    const absent = await post('/models/fraud_detector/predict', transaction);
    expect([known.status, unknown.status, absent.status]).toEqual([200, 200, 200]);
    expect(known.body.fraud_probability).not.toBeCloseTo(absent.body.fraud_probability as number, 3);
    expect(unknown.body.fraud_probability).toBe(absent.body.fraud_probability);
    expect(Object.keys(absent.body).sort()).toEqual([
      'fraud_probability',
      'is_fraud',
      'latency_ms',
      'model_name',
      'model_version',
    ]);
    // Features are looked up before the cache key is made, the cache before preprocess (issue #15's stage order).
    expect(known.timing).toMatch(/validate;dur=[\d.]+, features;dur=[\d.]+, cache;dur=[\d.]+, preprocess;dur=/);
    const stats = server.repository.version('fraud_detector').features!.stats;
    expect(stats.outcomes).toMatchObject({ hit: 1, miss: 2, timeout: 0, error: 0 });
    expect(stats.degraded).toBe(0);
  });

  it('looks up a batch of instances in one call, row by row', async () => {
    const { status, body } = await post('/models/fraud_detector/predict', {
      instances: [{ ...transaction, user_id: '007' }, transaction, { ...transaction, user_id: '007' }],
    });
    expect(status).toBe(200);
    const [a, b, c] = body.predictions as { fraud_probability: number }[];
    expect(a!.fraud_probability).toBe(c!.fraud_probability);
    expect(a!.fraud_probability).not.toBe(b!.fraud_probability);
  });

  it('with on_missing: error, an unknown user is a 404 and a missing user_id a 400, each naming the field', async () => {
    const unknown = await post('/models/strict/predict', { ...transaction, user_id: 'nobody' });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({
      error: 'user_id: no features stored for entity user:nobody',
      code: 'CALIPER_ENTITY_NOT_FOUND',
    });
    const absent = await post('/models/strict/predict', {
      instances: [{ ...transaction, user_id: '007' }, transaction],
    });
    expect(absent.status).toBe(400);
    expect(absent.body.error).toBe('instances[1].user_id: required to look up features (key user:{user_id})');
    expect((await post('/models/strict/predict', { ...transaction, user_id: '007' })).status).toBe(200);
  });

  it('exports the lookup outcomes, the degraded counter and the features stage duration on /metrics', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/caliper_feature_lookups_total\{model="fraud_detector",version="1",outcome="hit"\} [1-9]/);
    expect(text).toMatch(/caliper_feature_lookups_total\{model="fraud_detector",version="1",outcome="timeout"\} 0/);
    expect(text).toMatch(/caliper_features_degraded_total\{model="fraud_detector",version="1"\} 0/);
    expect(text).toMatch(
      /caliper_request_duration_seconds_count\{model="fraud_detector",version="1",stage="features"\} [1-9]/,
    );
  });

  it('declares features_degraded in the OpenAPI response schema', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    expect(doc.components.schemas.fraud_detector_response!.properties.features_degraded).toMatchObject({
      type: 'boolean',
    });
  });
});
