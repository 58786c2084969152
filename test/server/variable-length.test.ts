import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { parseModelConfig } from '../../src/config/model-config.ts';
import { DynamicBatcher } from '../../src/scheduler/dynamic-batcher.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const INT64 = TensorDataType.INT64;

/** ids [N, L] int64, mask [N, L] int64 → total [N] = Σ ids·mask per row, count [N] = Σ mask per row. */
function tokenModel(length: string | number): ModelProto {
  const g = new GraphBuilder('tokens', 17);
  g.input({ name: 'ids', elemType: INT64, shape: ['N', length] });
  g.input({ name: 'mask', elemType: INT64, shape: ['N', length] });
  g.initializer(tensorFromArray('axis1', [1], BigInt64Array.from([1n])));
  const [masked] = g.node('Mul', ['ids', 'mask']);
  g.node('ReduceSum', [masked!, 'axis1'], { keepdims: 0 }, ['total']);
  g.node('ReduceSum', ['mask', 'axis1'], { keepdims: 0 }, ['count']);
  g.output({ name: 'total', elemType: INT64, shape: ['N'] });
  g.output({ name: 'count', elemType: INT64, shape: ['N'] });
  return g.build();
}

const config = (
  name: string,
  tensor: Record<string, unknown>,
  field: Record<string, unknown> = { min_length: 1, max_length: 6 },
) => ({
  name,
  inputs: { tokens: { type: 'array', items: 'integer', ...field } },
  // pad 7 (not 0): a padded position the mask does not cancel changes the total.
  preprocess: {
    tensors: [
      { tensor: 'ids', dtype: 'int64', columns: [{ identity: 'tokens' }], pad: 7, attention_mask: 'mask', ...tensor },
    ],
  },
  postprocess: { total: { output: 'total' }, count: { output: 'count' } },
  batching: { max_batch_size: 8, preferred_batch_sizes: [5], max_queue_delay_us: 300_000 },
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
});

let repo: TempModelRepository;
let server: RunningServer;

beforeAll(async () => {
  repo = new TempModelRepository();
  repo.add('tokens', config('tokens', {}), tokenModel('L'));
  repo.add('fixed', config('fixed', { pad_to: 6 }), tokenModel(6));
  server = await startServing({ paths: [repo.dir], port: 0 });
});

afterAll(async () => {
  await server?.close();
  repo?.remove();
});

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const REQUESTS = [
  [[5]],
  [
    [1, 2, 3],
    [4, 4],
  ],
  [[9, 9, 9, 9, 9, 9]],
  [[2, 3]],
];

describe('variable-length array inputs', () => {
  it('pads the rows of one request to its longest and masks the padding', async () => {
    const { status, json } = await post('/models/tokens/predict', {
      instances: [{ tokens: [1, 2, 3] }, { tokens: [10] }],
    });
    expect(status).toBe(200);
    expect(json.predictions).toMatchObject([
      { total: 6, count: 3 },
      { total: 10, count: 1 },
    ]);
  });

  for (const model of ['tokens', 'fixed']) {
    it(`answers concurrent requests of different lengths as it answers each alone (${model})`, async () => {
      const alone: { status: number; json: Record<string, unknown> }[] = [];
      for (const rows of REQUESTS)
        alone.push(await post(`/models/${model}/predict`, { instances: rows.map((tokens) => ({ tokens })) }));
      const together = await Promise.all(
        REQUESTS.map((rows) => post(`/models/${model}/predict`, { instances: rows.map((tokens) => ({ tokens })) })),
      );
      REQUESTS.forEach((rows, i) => {
        const expected = rows.map((t) => ({ total: sum(t), count: t.length }));
        expect(alone[i]!.json.predictions).toMatchObject(expected);
        expect(together[i]!.status).toBe(200);
        expect(together[i]!.json.predictions).toMatchObject(expected);
      });
      // The four requests (five rows of four lengths) ran as one batch of 5, not one batch per length.
      const scheduler = server.repository.version(model).scheduler;
      expect(scheduler).toBeInstanceOf(DynamicBatcher);
      expect(
        (scheduler as DynamicBatcher).batches.sizes().find((s) => s.batchSize === 5)?.count,
      ).toBeGreaterThanOrEqual(1);
    });
  }

  it('rejects arrays outside min_length/max_length with a 400 naming the field', async () => {
    const long = await post('/models/tokens/predict', {
      instances: [{ tokens: [1] }, { tokens: [1, 2, 3, 4, 5, 6, 7] }],
    });
    expect(long.status).toBe(400);
    expect(JSON.stringify(long.json)).toContain('instances[1].tokens: expected an array of 1 to 6 numbers, got 7');
    const empty = await post('/models/tokens/predict', { tokens: [] });
    expect(empty.status).toBe(400);
    expect(JSON.stringify(empty.json)).toContain('tokens: expected an array of 1 to 6 numbers, got 0');
    const bad = await post('/models/tokens/predict', { tokens: [1, 2.5] });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toContain('tokens[1]');
  });

  it('pads v2 requests of different lengths into one batch with the declared pad value and a zero mask', async () => {
    const infer = (rows: number[][]) =>
      post('/v2/models/tokens/infer', {
        inputs: [
          { name: 'ids', datatype: 'INT64', shape: [rows.length, rows[0]!.length], data: rows.flat() },
          { name: 'mask', datatype: 'INT64', shape: [rows.length, rows[0]!.length], data: rows.flat().map(() => 1) },
        ],
      });
    const requests = [
      [[1, 2, 3, 4]],
      [[5]],
      [
        [6, 7],
        [8, 9],
      ],
      [[10, 11, 12]],
    ];
    const before =
      (server.repository.version('tokens').scheduler as DynamicBatcher).batches.sizes().find((b) => b.batchSize === 5)
        ?.count ?? 0;
    const answers = await Promise.all(requests.map(infer));
    answers.forEach((answer, i) => {
      expect(answer.status).toBe(200);
      const outputs = answer.json.outputs as { name: string; data: number[] }[];
      expect(outputs.find((o) => o.name === 'total')!.data).toEqual(requests[i]!.map(sum));
      expect(outputs.find((o) => o.name === 'count')!.data).toEqual(requests[i]!.map((r) => r.length));
    });
    expect(
      (server.repository.version('tokens').scheduler as DynamicBatcher).batches.sizes().find((b) => b.batchSize === 5)
        ?.count,
    ).toBe(before + 1);
  });

  it('shows the bounds in the OpenAPI request schema', async () => {
    const doc = JSON.stringify(await (await fetch(`${server.url}/openapi.json`)).json());
    expect(doc).toContain('"tokens":{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":6}');
  });
});

describe('variable-length configuration', () => {
  it('refuses length with min_length, pad on a fixed-length field, pad_to below max_length, a pad the dtype cannot hold and a mask named like a tensor', () => {
    const cases: [Record<string, unknown>, Record<string, unknown>, string][] = [
      [{}, { length: 3, max_length: 6 }, 'inputs.tokens.length'],
      [{}, { length: 3 }, 'preprocess.tensors[0].pad'],
      [{ pad_to: 4 }, { max_length: 6 }, 'preprocess.tensors[0].pad_to'],
      [{ pad_to: 4 }, {}, 'preprocess.tensors[0].pad_to'],
      [{}, { min_length: 4, max_length: 2 }, 'inputs.tokens.max_length'],
      [{ pad: 0.5 }, {}, 'preprocess.tensors[0].pad'],
      [{ attention_mask: 'ids' }, {}, 'preprocess.tensors[0].attention_mask'],
    ];
    for (const [tensor, field, where] of cases) {
      expect(() => parseModelConfig(config('bad', tensor, field), 'model.yaml', '/tmp')).toThrow(where);
    }
    const twoMasks = config('bad', {});
    const tensors = (twoMasks.preprocess as { tensors: Record<string, unknown>[] }).tensors;
    tensors.push({ ...tensors[0], tensor: 'other' });
    expect(() => parseModelConfig(twoMasks, 'model.yaml', '/tmp')).toThrow('preprocess.tensors[1].attention_mask');
  });
});
