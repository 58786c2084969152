import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

let server: RunningServer;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const transaction = { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 };

beforeAll(async () => {
  server = await startServing({ paths: ['examples'], port: 0, logger: quietLogger(), bodyLimit: 64 * 1024 });
});

afterAll(async () => {
  await server.close();
});

describe('POST /models/{name}/predict', () => {
  it('answers the postprocess fields, latency_ms, model name and version, and a Server-Timing header', async () => {
    const response = await post('/models/fraud_detector/predict', transaction);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual([
      'fraud_probability',
      'is_fraud',
      'latency_ms',
      'model_name',
      'model_version',
    ]);
    expect(body.fraud_probability).toBeGreaterThan(0);
    expect(body.fraud_probability).toBeLessThan(1);
    expect(body.is_fraud).toBe((body.fraud_probability as number) > 0.7);
    expect(body.latency_ms).toBeGreaterThan(0);
    expect(body).toMatchObject({ model_name: 'fraud_detector', model_version: '2' });
    const timing = response.headers.get('server-timing') ?? '';
    for (const stage of ['validate', 'preprocess', 'inference', 'postprocess', 'total'])
      expect(timing).toContain(`${stage};dur=`);
  });

  it('answers one prediction per instance, in order', async () => {
    const risky = { transaction_amount: 9000, merchant_category: 'jewelry', time_since_last_txn: 2 };
    const safe = { transaction_amount: 8, merchant_category: 'grocery', time_since_last_txn: 90_000 };
    const response = await post('/models/fraud_detector/predict', { instances: [risky, safe, risky] });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      predictions: { fraud_probability: number; is_fraud: boolean; latency_ms: number }[];
    };
    expect(body.predictions).toHaveLength(3);
    const [a, b, c] = body.predictions;
    expect(a!.fraud_probability).toBeGreaterThan(b!.fraud_probability);
    expect(a!.fraud_probability).toBeCloseTo(c!.fraud_probability, 6);
    expect(a!.is_fraud).toBe(true);
    expect(b!.is_fraud).toBe(false);
    const single = (await (await post('/models/fraud_detector/predict', safe)).json()) as { fraud_probability: number };
    expect(single.fraud_probability).toBeCloseTo(b!.fraud_probability, 6);
  });

  it('serves the image classifier with top-3 labels and probabilities', async () => {
    const { readFileSync } = await import('node:fs');
    const sample = JSON.parse(readFileSync('examples/fashion-mnist/sample-request.json', 'utf8')) as {
      pixels: number[];
    };
    const response = await post('/models/fashion_mnist/predict', sample);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { top3: { label: string; probability: number }[] };
    expect(body.top3).toHaveLength(3);
    expect(body.top3[0]!.label).toBe('Ankle boot');
    expect(body.top3[0]!.probability).toBeGreaterThanOrEqual(body.top3[1]!.probability);
    expect(body.top3.reduce((s, t) => s + t.probability, 0)).toBeLessThanOrEqual(1 + 1e-9);
  });

  it('accepts a named version and refuses an unknown one with 404', async () => {
    expect((await post('/models/fraud_detector/versions/2/predict', transaction)).status).toBe(200);
    const response = await post('/models/fraud_detector/versions/9/predict', transaction);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: string }).error).toMatch(/no served version "9"/);
  });

  it('refuses POST /predict when more than one model is served', async () => {
    const response = await post('/predict', transaction);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: string }).error).toMatch(/exactly one model/);
  });
});

describe('bad input gets a 4xx naming the field, and the server keeps serving', () => {
  const cases: [string, unknown, number, RegExp][] = [
    [
      'wrong type',
      { ...transaction, transaction_amount: '249.99' },
      400,
      /transaction_amount: expected a number >= 0, got "249.99"/,
    ],
    [
      'missing field',
      { transaction_amount: 1, merchant_category: 'fuel' },
      400,
      /time_since_last_txn: required field is missing/,
    ],
    ['unknown field', { ...transaction, card_id: 7 }, 400, /card_id: unknown field/],
    [
      'below minimum',
      { ...transaction, time_since_last_txn: -1 },
      400,
      /time_since_last_txn: expected a number >= 0, got number -1/,
    ],
    [
      'Infinity (1e999 in JSON)',
      '{"transaction_amount":1e999,"merchant_category":"fuel","time_since_last_txn":3}',
      400,
      /NaN and Infinity are not allowed/,
    ],
    [
      'NaN literal',
      '{"transaction_amount":NaN,"merchant_category":"fuel","time_since_last_txn":3}',
      400,
      /malformed JSON/,
    ],
    [
      'unknown category',
      { ...transaction, merchant_category: 'casino' },
      400,
      /merchant_category: unknown category "casino" \(expected one of grocery,/,
    ],
    [
      'null for a required field',
      { ...transaction, merchant_category: null },
      400,
      /merchant_category: expected one of grocery/,
    ],
    ['malformed JSON', '{"transaction_amount": 3,', 400, /malformed JSON/],
    ['an array body', [transaction], 400, /body: expected a JSON object/],
    [
      'bad instance inside a batch',
      { instances: [transaction, { ...transaction, merchant_category: 7 }] },
      400,
      /instances\[1\]\.merchant_category/,
    ],
    ['empty instances', { instances: [] }, 400, /instances: expected a non-empty array/],
  ];
  for (const [name, body, status, message] of cases) {
    it(name, async () => {
      const response = await post('/models/fraud_detector/predict', body);
      expect(response.status).toBe(status);
      const error = (await response.json()) as { error: string; code: string };
      expect(error.error).toMatch(message);
      expect(error.code).toMatch(/^CALIPER_/);
    });
  }

  it('wrong array length for an image', async () => {
    const response = await post('/models/fashion_mnist/predict', { pixels: [1, 2, 3] });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe(
      'pixels: expected an array of 784 numbers, got 3',
    );
  });

  it('pixel out of range', async () => {
    const pixels = new Array(784).fill(0);
    pixels[5] = 256;
    const response = await post('/models/fashion_mnist/predict', { pixels });
    expect(((await response.json()) as { error: string }).error).toBe(
      'pixels[5]: expected a number between 0 and 255, got number 256',
    );
  });

  it('body over the limit gets 413', async () => {
    const response = await post('/models/fraud_detector/predict', { instances: new Array(3000).fill(transaction) });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: string }).error).toMatch(/larger than the server's limit/);
  });

  it('unknown model gets 404 listing the served ones', async () => {
    const response = await post('/models/nope/predict', transaction);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: string }).error).toBe(
      'model "nope" is not served (served models: fashion_mnist, fraud_detector, iris_classifier)',
    );
  });

  it('non-JSON content type gets 415', async () => {
    const response = await fetch(`${server.url}/models/fraud_detector/predict`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(response.status).toBe(415);
  });

  it('still serves after all of the above', async () => {
    expect((await post('/models/fraud_detector/predict', transaction)).status).toBe(200);
  });
});

describe('documentation', () => {
  it('serves an OpenAPI document with each model request and response schema', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
      components: {
        schemas: Record<
          string,
          { properties: Record<string, { type?: string; enum?: string[] }>; required?: string[] }
        >;
      };
    };
    expect(Object.keys(doc.paths)).toContain('/models/fraud_detector/predict');
    expect(Object.keys(doc.paths)).toContain('/v2/models/{model_name}/infer');
    const request = doc.components.schemas.fraud_detector_request!;
    expect(request.required).toEqual(['transaction_amount', 'merchant_category', 'time_since_last_txn']);
    expect(request.properties.merchant_category!.enum).toContain('jewelry');
    expect(doc.components.schemas.fraud_detector_response!.properties.is_fraud!.type).toBe('boolean');
  });

  it('serves Swagger UI at /docs', async () => {
    const response = await fetch(`${server.url}/docs/`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('swagger');
    const spec = (await (await fetch(`${server.url}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(spec.paths)).toContain('/models/fashion_mnist/predict');
  });
});
