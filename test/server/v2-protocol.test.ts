/**
 * Open Inference Protocol (KServe v2) over REST, checked with the specification's own examples
 * (kserve/open-inference-protocol, specification/protocol/inference_rest.md: server and model metadata,
 * health, the "id": "42" inference request and its response, {"error": "..."} error objects; the
 * Tensor Data section's nested `[[1, 2], [4, 5]]` and flattened `[1, 2, 4, 5]` forms) against a real
 * server on an ephemeral port, with fetch as the client.
 *
 * Served: the fraud-detector example (tensor `features` FP32 [-1, 10] → `fraud_probability` FP32 [-1, 1]),
 * `mymodel`, a tiny ONNX graph with exactly the spec example's signature (input0 UINT32 [2, 2],
 * input1 BOOL [3] → output0 FP32 [3, 2]), and one tiny graph per datatype (Identity/Not plus a Cast to
 * FP64) so every datatype goes client → JSON → ONNX Runtime → JSON and back.
 */
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

/** The reference scenario's model as DESIGN.md describes it (version 1: 10 features), copied into the temp repository. */
const FRAUD_DIR = 'examples/fraud-detector';
const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];

interface V2Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: Record<string, unknown>;
}
interface InferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: V2Tensor[];
}
interface ModelMetadata {
  name: string;
  versions?: string[];
  platform: string;
  inputs: V2Tensor[];
  outputs: V2Tensor[];
}
interface ErrorBody {
  error: string;
}

let server: RunningServer;
const repo = new TempModelRepository();

async function request(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; contentType: string }> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    json: text === '' ? undefined : (JSON.parse(text) as unknown),
    contentType: response.headers.get('content-type') ?? '',
  };
}

const infer = (model: string, body: unknown) => request('POST', `/v2/models/${model}/infer`, body);

/** Two transactions as the example's preprocess builds them: log1p(amount), log1p(seconds)/10, one-hot. */
function fraudFeatures(): number[][] {
  const rows: [number, string, number][] = [
    [249.99, 'electronics', 310],
    [12.5, 'grocery', 86_400],
  ];
  return rows.map(([amount, category, seconds]) => [
    Math.fround(Math.log1p(amount)),
    Math.fround(Math.log1p(seconds) / 10),
    ...CATEGORIES.map((c) => (c === category ? 1 : 0)),
  ]);
}

let fraudExpected: number[];

/** A 4xx with the protocol's error object: {"error": "<message>"} naming what was wrong. */
function expectError(
  result: { status: number; json: unknown; contentType: string },
  status: number,
  ...mentions: (string | RegExp)[]
): void {
  expect(result.status, JSON.stringify(result.json)).toBe(status);
  expect(result.contentType).toContain('application/json');
  const body = result.json as ErrorBody;
  expect(typeof body.error).toBe('string');
  for (const m of mentions) expect(body.error).toMatch(m);
}

/** After every bad request the server must still answer a good one, with the right numbers. */
async function expectStillServing(): Promise<void> {
  const ok = await infer('fraud_detector', {
    inputs: [{ name: 'features', shape: [2, 10], datatype: 'FP32', data: fraudFeatures().flat() }],
  });
  expect(ok.status).toBe(200);
  expect((ok.json as InferResponse).outputs[0]!.data).toEqual(fraudExpected);
}

// ---------- tiny models ----------

/** The spec example's model: input0 UINT32 [2,2], input1 BOOL [3] → output0 FP32 [3,2] = pad(input0, one row) + input1 per row. */
function specExampleModel(): ModelProto {
  const g = new GraphBuilder('mymodel', 17);
  g.input({ name: 'input0', elemType: TensorDataType.UINT32, shape: [2, 2] });
  g.input({ name: 'input1', elemType: TensorDataType.BOOL, shape: [3] });
  const [a] = g.node('Cast', ['input0'], { to: TensorDataType.FLOAT });
  g.initializer(tensorFromArray('pads', [4], BigInt64Array.from([0n, 0n, 1n, 0n])));
  const [padded] = g.node('Pad', [a!, 'pads']);
  const [b] = g.node('Cast', ['input1'], { to: TensorDataType.FLOAT });
  g.initializer(tensorFromArray('axes', [1], BigInt64Array.from([1n])));
  const [column] = g.node('Unsqueeze', [b!, 'axes']);
  g.node('Add', [padded!, column!], {}, ['output0']);
  g.output({ name: 'output0', elemType: TensorDataType.FLOAT, shape: [3, 2] });
  return g.build();
}

const specExampleConfig = {
  name: 'mymodel',
  inputs: { input0: { type: 'array', items: 'integer', length: 2, minimum: 0 }, input1: { type: 'boolean' } },
  preprocess: {
    tensors: [
      { tensor: 'input0', dtype: 'uint32', columns: [{ identity: 'input0' }] },
      { tensor: 'input1', dtype: 'bool', columns: [{ identity: 'input1' }], shape: [] },
    ],
  },
  postprocess: { output0: { output: 'output0' } },
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
};

interface DatatypeCase {
  datatype: string;
  onnx: number;
  /** The element type name model.yaml uses. */
  dtype: string;
  /** A [2, 3] tensor's values, including the type's extremes. */
  values: (number | boolean | string)[];
  /** Values outside the type (each must be a 400). */
  invalid: unknown[];
  kind?: 'worker' | 'in_thread';
}

const DATATYPES: DatatypeCase[] = [
  {
    datatype: 'BOOL',
    onnx: TensorDataType.BOOL,
    dtype: 'bool',
    values: [true, false, true, false, false, true],
    invalid: [1, 'true', null],
    kind: 'worker',
  },
  {
    datatype: 'INT8',
    onnx: TensorDataType.INT8,
    dtype: 'int8',
    values: [-128, 127, 0, -1, 5, 100],
    invalid: [128, -129, 1.5],
  },
  {
    datatype: 'INT16',
    onnx: TensorDataType.INT16,
    dtype: 'int16',
    values: [-32768, 32767, 0, -1, 5, 1000],
    invalid: [32768, -32769],
  },
  {
    datatype: 'INT32',
    onnx: TensorDataType.INT32,
    dtype: 'int32',
    values: [-2147483648, 2147483647, 0, -1, 5, 1000],
    invalid: [2147483648, 0.5],
  },
  {
    datatype: 'INT64',
    onnx: TensorDataType.INT64,
    dtype: 'int64',
    values: [-(2 ** 53) + 1, 2 ** 53 - 1, 0, -1, 5, 1e15],
    invalid: [1e19, 1.25],
  },
  {
    datatype: 'UINT8',
    onnx: TensorDataType.UINT8,
    dtype: 'uint8',
    values: [0, 255, 1, 128, 7, 200],
    invalid: [256, -1],
  },
  {
    datatype: 'UINT16',
    onnx: TensorDataType.UINT16,
    dtype: 'uint16',
    values: [0, 65535, 1, 300, 7, 40000],
    invalid: [65536, -1],
  },
  {
    datatype: 'UINT32',
    onnx: TensorDataType.UINT32,
    dtype: 'uint32',
    values: [0, 4294967295, 1, 300, 7, 3e9],
    invalid: [4294967296, -1],
  },
  {
    datatype: 'UINT64',
    onnx: TensorDataType.UINT64,
    dtype: 'uint64',
    values: [0, 2 ** 53 - 1, 1, 300, 7, 3e9],
    invalid: [-1, 2.5],
  },
  {
    datatype: 'FP32',
    onnx: TensorDataType.FLOAT,
    dtype: 'float32',
    values: [0.1, -2.5, 3.4e38, 1e-30, 0, -0.333],
    invalid: ['1.0', true],
  },
  {
    datatype: 'FP64',
    onnx: TensorDataType.DOUBLE,
    dtype: 'float64',
    values: [0.1, -2.5, 1e300, 5e-324, 0, Math.PI],
    invalid: ['x'],
  },
  {
    datatype: 'BYTES',
    onnx: TensorDataType.STRING,
    dtype: 'string',
    values: ['héllo', '', '日本語', 'a b', '{"json":1}', 'x'],
    invalid: [5, true],
    kind: 'worker',
  },
];

const modelName = (c: DatatypeCase): string => `dt_${c.datatype.toLowerCase()}`;

/** x [N, 3] of the case's type → y (Identity, or Not for BOOL) and, for numbers, as_fp64 = Cast(x, DOUBLE). */
function datatypeModel(c: DatatypeCase): ModelProto {
  const g = new GraphBuilder(modelName(c), 17);
  g.input({ name: 'x', elemType: c.onnx, shape: ['N', 3] });
  g.node(c.datatype === 'BOOL' ? 'Not' : 'Identity', ['x'], {}, ['y']);
  g.output({ name: 'y', elemType: c.onnx, shape: ['N', 3] });
  if (c.datatype !== 'BYTES') {
    g.node('Cast', ['x'], { to: TensorDataType.DOUBLE }, ['as_fp64']);
    g.output({ name: 'as_fp64', elemType: TensorDataType.DOUBLE, shape: ['N', 3] });
  }
  return g.build();
}

function datatypeConfig(c: DatatypeCase): Record<string, unknown> {
  const instances = { count: 1, kind: c.kind ?? 'in_thread', intra_op_threads: 1 };
  if (c.datatype === 'BYTES') {
    return {
      name: modelName(c),
      inputs: { a: { type: 'string' }, b: { type: 'string' }, c: { type: 'string' } },
      preprocess: { tensor: 'x', dtype: 'string', columns: [{ identity: 'a' }, { identity: 'b' }, { identity: 'c' }] },
      postprocess: { y: { output: 'y' } },
      instances,
    };
  }
  return {
    name: modelName(c),
    inputs: { x: { type: 'array', items: c.dtype.startsWith('float') ? 'number' : 'integer', length: 3 } },
    preprocess: { tensor: 'x', dtype: c.dtype, columns: [{ identity: 'x' }] },
    postprocess: { y: { output: 'y' }, as_fp64: { output: 'as_fp64' } },
    instances,
  };
}

beforeAll(async () => {
  repo.addFiles('fraud_detector', `${FRAUD_DIR}/model.yaml`, `${FRAUD_DIR}/1/model.onnx`);
  repo.add('mymodel', specExampleConfig, specExampleModel());
  for (const c of DATATYPES) repo.add(modelName(c), datatypeConfig(c), datatypeModel(c));
  server = await startServing({ paths: [repo.dir], port: 0, logger: createLogger('silent') });
  expect(server.repository.failures).toEqual([]);

  // The reference: the same tensor through ONNX Runtime directly, in this process.
  const session = await ort.InferenceSession.create(`${FRAUD_DIR}/1/model.onnx`);
  const feeds = { features: new ort.Tensor('float32', Float32Array.from(fraudFeatures().flat()), [2, 10]) };
  const result = await session.run(feeds);
  fraudExpected = Array.from(result.fraud_probability!.data as Float32Array);
  await session.release();
});

afterAll(async () => {
  await server?.close();
  repo.remove();
});

describe('health and metadata', () => {
  it('GET /v2 answers the server metadata object {name, version, extensions}', async () => {
    const { status, json } = await request('GET', '/v2');
    expect(status).toBe(200);
    const body = json as { name: string; version: string; extensions: string[] };
    expect(Object.keys(body).sort()).toEqual(['extensions', 'name', 'version']);
    expect(body.name).toBe('caliper');
    expect(typeof body.version).toBe('string');
    expect(Array.isArray(body.extensions)).toBe(true);
    for (const e of body.extensions) expect(typeof e).toBe('string');
  });

  it('GET /v2/health/live and /v2/health/ready answer 200 with {live: true} and {ready: true}', async () => {
    expect(await request('GET', '/v2/health/live')).toMatchObject({ status: 200, json: { live: true } });
    expect(await request('GET', '/v2/health/ready')).toMatchObject({ status: 200, json: { ready: true } });
  });

  it('GET /v2/models/{name}[/versions/{v}] answers the model metadata object, -1 for variable dimensions', async () => {
    const expected: ModelMetadata = {
      name: 'fraud_detector',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 10] }],
      outputs: [{ name: 'fraud_probability', datatype: 'FP32', shape: [-1, 1] }],
    };
    for (const path of ['/v2/models/fraud_detector', '/v2/models/fraud_detector/versions/1']) {
      const { status, json } = await request('GET', path);
      expect(status).toBe(200);
      expect(json).toEqual({ ...expected, batchable: true });
    }
    const spec = await request('GET', '/v2/models/mymodel');
    expect(spec.json).toMatchObject({
      inputs: [
        { name: 'input0', datatype: 'UINT32', shape: [2, 2] },
        { name: 'input1', datatype: 'BOOL', shape: [3] },
      ],
      outputs: [{ name: 'output0', datatype: 'FP32', shape: [3, 2] }],
    });
  });

  it('GET /v2/models/{name}[/versions/{v}]/ready answers {name, ready: true}', async () => {
    for (const path of ['/v2/models/fraud_detector/ready', '/v2/models/fraud_detector/versions/1/ready']) {
      const { status, json } = await request('GET', path);
      expect(status).toBe(200);
      expect(json).toMatchObject({ name: 'fraud_detector', ready: true });
    }
  });

  it('reports every datatype under its protocol name in the model metadata', async () => {
    for (const c of DATATYPES) {
      const { json } = await request('GET', `/v2/models/${modelName(c)}`);
      const meta = json as ModelMetadata;
      expect(meta.inputs).toEqual([{ name: 'x', datatype: c.datatype, shape: [-1, 3] }]);
      expect(meta.outputs[0]).toEqual({ name: 'y', datatype: c.datatype, shape: [-1, 3] });
    }
  });
});

describe('inference: the specification example', () => {
  it('answers the example request (id "42", one output selected), adapted to the fraud model\'s tensor names', async () => {
    const { status, json, contentType } = await infer('fraud_detector', {
      id: '42',
      inputs: [{ name: 'features', shape: [2, 10], datatype: 'FP32', data: fraudFeatures().flat() }],
      outputs: [{ name: 'fraud_probability' }],
    });
    expect(status).toBe(200);
    expect(contentType).toContain('application/json');
    expect(json).toEqual({
      model_name: 'fraud_detector',
      model_version: '1',
      id: '42',
      outputs: [{ name: 'fraud_probability', shape: [2, 1], datatype: 'FP32', data: fraudExpected }],
    });
    expect(fraudExpected[0]).not.toBeCloseTo(fraudExpected[1]!, 3);
  });

  it('serves the example request verbatim except for its erratum: input1 [3] BOOL needs three values', async () => {
    const example = {
      id: '42',
      inputs: [
        { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
        { name: 'input1', shape: [3], datatype: 'BOOL', data: [true] },
      ],
      outputs: [{ name: 'output0' }],
    };
    // As printed, the example's input1 has one value for a [3] shape: a conforming server must refuse it.
    expectError(await infer('mymodel', example), 400, /input1/, /needs 3 values, got 1/);

    example.inputs[1]!.data = [true, false, true];
    const { status, json } = await infer('mymodel', example);
    expect(status).toBe(200);
    // output0 = [[1, 2], [3, 4], [0, 0]] + input1 as a column.
    expect(json).toEqual({
      model_name: 'mymodel',
      model_version: '1',
      id: '42',
      outputs: [{ name: 'output0', shape: [3, 2], datatype: 'FP32', data: [2, 3, 3, 4, 1, 1] }],
    });
  });

  it("accepts the Tensor Data section's nested and flattened forms alike", async () => {
    const flat = await infer('mymodel', {
      inputs: [
        { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 4, 5] },
        { name: 'input1', shape: [3], datatype: 'BOOL', data: [false, true, false] },
      ],
    });
    const nested = await infer('mymodel', {
      inputs: [
        {
          name: 'input0',
          shape: [2, 2],
          datatype: 'UINT32',
          data: [
            [1, 2],
            [4, 5],
          ],
        },
        { name: 'input1', shape: [3], datatype: 'BOOL', data: [[false], [true], [false]] },
      ],
    });
    expect(flat.status).toBe(200);
    expect(nested.json).toEqual(flat.json);
    expect((flat.json as InferResponse).outputs[0]!.data).toEqual([1, 2, 5, 6, 0, 0]);

    const features = fraudFeatures();
    const fraudNested = await infer('fraud_detector', {
      inputs: [{ name: 'features', shape: [2, 10], datatype: 'FP32', data: features }],
    });
    expect(fraudNested.status).toBe(200);
    expect((fraudNested.json as InferResponse).outputs[0]!.data).toEqual(fraudExpected);
  });

  it('returns every output when none is selected, and no id when none was sent', async () => {
    const { status, json } = await infer('dt_int8', {
      inputs: [{ name: 'x', shape: [1, 3], datatype: 'INT8', data: [1, 2, 3] }],
    });
    expect(status).toBe(200);
    const body = json as InferResponse;
    expect('id' in body).toBe(false);
    expect(body.outputs.map((o) => o.name).sort()).toEqual(['as_fp64', 'y']);
    const only = await infer('dt_int8', {
      id: 'sel',
      inputs: [{ name: 'x', shape: [1, 3], datatype: 'INT8', data: [1, 2, 3] }],
      outputs: [{ name: 'as_fp64' }],
    });
    expect(only.json).toEqual({
      model_name: 'dt_int8',
      model_version: '1',
      id: 'sel',
      outputs: [{ name: 'as_fp64', datatype: 'FP64', shape: [1, 3], data: [1, 2, 3] }],
    });
  });

  it('answers the same through /versions/{v}/infer', async () => {
    const { status, json } = await request('POST', '/v2/models/fraud_detector/versions/1/infer', {
      inputs: [{ name: 'features', shape: [2, 10], datatype: 'FP32', data: fraudFeatures().flat() }],
    });
    expect(status).toBe(200);
    expect((json as InferResponse).outputs[0]!.data).toEqual(fraudExpected);
  });
});

describe('every datatype end to end', () => {
  for (const c of DATATYPES) {
    it(`${c.datatype}: values (extremes included) reach ONNX Runtime and come back exactly`, async () => {
      const { status, json } = await infer(modelName(c), {
        id: c.datatype,
        inputs: [{ name: 'x', shape: [2, 3], datatype: c.datatype, data: c.values }],
      });
      expect(status, JSON.stringify(json)).toBe(200);
      const body = json as InferResponse;
      expect(body.id).toBe(c.datatype);
      const y = body.outputs.find((o) => o.name === 'y')!;
      expect(y.datatype).toBe(c.datatype);
      expect(y.shape).toEqual([2, 3]);
      const expectedY =
        c.datatype === 'BOOL'
          ? c.values.map((v) => !v)
          : c.datatype === 'FP32'
            ? c.values.map((v) => Math.fround(v as number))
            : c.values;
      expect(y.data).toEqual(expectedY);
      if (c.datatype !== 'BYTES') {
        const asDouble = body.outputs.find((o) => o.name === 'as_fp64')!;
        expect(asDouble.datatype).toBe('FP64');
        const expectedDouble = c.values.map((v) =>
          typeof v === 'boolean' ? Number(v) : c.datatype === 'FP32' ? Math.fround(v as number) : v,
        );
        expect(asDouble.data).toEqual(expectedDouble);
      }
    });

    it(`${c.datatype}: a value the datatype cannot hold is a 400 naming the element`, async () => {
      for (const bad of c.invalid) {
        const values: unknown[] = [...c.values];
        values[4] = bad;
        expectError(
          await infer(modelName(c), { inputs: [{ name: 'x', shape: [2, 3], datatype: c.datatype, data: values }] }),
          400,
          'inputs.x.data[4]',
          c.datatype,
        );
      }
      await expectStillServing();
    });
  }

  it('BYTES and BOOL models also answer /predict built by model.yaml (string and bool tensors)', async () => {
    const text = await request('POST', '/models/dt_bytes/predict', { a: 'héllo', b: '', c: '日本語' });
    expect(text.status, JSON.stringify(text.json)).toBe(200);
    expect((text.json as { y: unknown }).y).toEqual(['héllo', '', '日本語']);
    const flags = await request('POST', '/models/dt_bool/predict', { instances: [{ x: [1, 0, 1] }, { x: [0, 0, 0] }] });
    expect(flags.status, JSON.stringify(flags.json)).toBe(200);
    const predictions = (flags.json as { predictions: { y: unknown; as_fp64: unknown }[] }).predictions;
    expect(predictions.map((p) => p.as_fp64)).toEqual([
      [1, 0, 1],
      [0, 0, 0],
    ]);
    expect(predictions.map((p) => p.y)).toEqual([
      [false, true, false],
      [true, true, true],
    ]);
  });

  it('FP16 cannot be sent as JSON numbers: 400 pointing at the binary extension', async () => {
    expectError(
      await infer('fraud_detector', {
        inputs: [{ name: 'features', shape: [1, 10], datatype: 'FP16', data: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0] }],
      }),
      400,
      'FP16',
      /binary/,
    );
    await expectStillServing();
  });
});

describe('errors answer {"error": "..."} with the right status, and the server keeps serving', () => {
  const good = () => ({
    name: 'features',
    shape: [2, 10],
    datatype: 'FP32',
    data: fraudFeatures().flat() as unknown[],
  });

  it('wrong shape: a static dimension that differs, or a different rank → 400 naming the shape', async () => {
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), shape: [2, 9], data: good().data.slice(0, 18) }] }),
      400,
      'inputs.features.shape',
      /10/,
    );
    await expectStillServing();
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), shape: [20] }] }),
      400,
      'inputs.features.shape',
      /rank 2/,
    );
    await expectStillServing();
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), shape: [2, -10] }] }),
      400,
      'inputs.features.shape',
    );
    await expectStillServing();
    expectError(
      await infer('mymodel', {
        inputs: [
          { name: 'input0', shape: [1, 2], datatype: 'UINT32', data: [1, 2] },
          { name: 'input1', shape: [3], datatype: 'BOOL', data: [true, true, true] },
        ],
      }),
      400,
      'inputs.input0.shape',
    );
    await expectStillServing();
  });

  it('wrong datatype: a known datatype the input is not, or no datatype at all → 400', async () => {
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), datatype: 'FP64' }] }),
      400,
      'inputs.features.datatype',
      /float32/,
    );
    await expectStillServing();
    expectError(
      await infer('fraud_detector', {
        inputs: [{ ...good(), datatype: 'INT32', data: fraudFeatures().flat().map(Math.round) }],
      }),
      400,
      'inputs.features.datatype',
    );
    await expectStillServing();
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), datatype: 'FLOAT32' }] }),
      400,
      'inputs.features.datatype',
      /FP32/,
    );
    await expectStillServing();
    expectError(
      await infer('fraud_detector', {
        inputs: [{ ...good(), datatype: 'FP32', data: [...good().data.slice(0, 19), 'x'] }],
      }),
      400,
      'inputs.features.data[19]',
    );
    await expectStillServing();
  });

  it('data length mismatch: too few, too many, or no data → 400 naming the count', async () => {
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), data: good().data.slice(0, 19) }] }),
      400,
      'inputs.features.data',
      /20 values, got 19/,
    );
    await expectStillServing();
    expectError(
      await infer('fraud_detector', { inputs: [{ ...good(), data: [...good().data, 0] }] }),
      400,
      /20 values, got 21/,
    );
    await expectStillServing();
    const { data: _omitted, ...withoutData } = good();
    expectError(await infer('fraud_detector', { inputs: [withoutData] }), 400, 'inputs.features.data');
    await expectStillServing();
  });

  it('unknown input, missing input, duplicate input → 400 naming the input', async () => {
    expectError(
      await infer('fraud_detector', { inputs: [good(), { name: 'extra', shape: [1], datatype: 'FP32', data: [1] }] }),
      400,
      /unknown input "extra"/,
      /features/,
    );
    await expectStillServing();
    expectError(
      await infer('mymodel', { inputs: [{ name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] }] }),
      400,
      /missing input "input1"/,
    );
    await expectStillServing();
    expectError(await infer('fraud_detector', { inputs: [good(), good()] }), 400, /features/, /twice/);
    await expectStillServing();
    expectError(await infer('fraud_detector', { inputs: [] }), 400, 'inputs');
    await expectStillServing();
  });

  it("unknown output → 400 naming the output and the model's outputs", async () => {
    expectError(
      await infer('fraud_detector', { inputs: [good()], outputs: [{ name: 'probability' }] }),
      400,
      /unknown output "probability"/,
      /fraud_probability/,
    );
    await expectStillServing();
  });

  it('unknown model → 404 on infer, metadata and ready', async () => {
    expectError(await infer('no_such_model', { inputs: [good()] }), 404, /no_such_model/);
    expectError(await request('GET', '/v2/models/no_such_model'), 404, /no_such_model/);
    expectError(await request('GET', '/v2/models/no_such_model/ready'), 404, /no_such_model/);
    await expectStillServing();
  });

  it('unknown version → 404 on infer, metadata and ready', async () => {
    expectError(
      await request('POST', '/v2/models/fraud_detector/versions/7/infer', { inputs: [good()] }),
      404,
      /version "7"/,
    );
    expectError(await request('GET', '/v2/models/fraud_detector/versions/7'), 404, /version "7"/);
    expectError(await request('GET', '/v2/models/fraud_detector/versions/7/ready'), 404);
    expectError(await request('GET', '/v2/models/fraud_detector/versions/latest'), 404, /latest/);
    await expectStillServing();
  });

  it('malformed JSON, an empty body, or a body that is not an inference request → 400', async () => {
    expectError(await infer('fraud_detector', '{"inputs": [{"name": "features",'), 400, /JSON/);
    await expectStillServing();
    expectError(await infer('fraud_detector', '{"inputs": [], }'), 400, /JSON/);
    await expectStillServing();
    expectError(await infer('fraud_detector', ''), 400);
    await expectStillServing();
    expectError(await infer('fraud_detector', '[1, 2, 3]'), 400, /inference request/);
    await expectStillServing();
    expectError(await infer('fraud_detector', { inputs: 'features' }), 400, 'inputs');
    await expectStillServing();
    expectError(await infer('fraud_detector', { id: 42, inputs: [good()] }), 400, /id/);
    await expectStillServing();
    expectError(
      await infer('fraud_detector', { inputs: [good()], outputs: [{ nom: 'fraud_probability' }] }),
      400,
      /outputs\[0\]/,
    );
    await expectStillServing();
  });

  it('still answers health, metadata and the example after all of the above', async () => {
    expect((await request('GET', '/v2/health/ready')).status).toBe(200);
    expect((await request('GET', '/v2/models/fraud_detector/ready')).status).toBe(200);
    const sample = JSON.parse(readFileSync(`${FRAUD_DIR}/sample-request.json`, 'utf8')) as Record<string, unknown>;
    expect((await request('POST', '/models/fraud_detector/predict', sample)).status).toBe(200);
    await expectStillServing();
  });
});
