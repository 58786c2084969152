/**
 * PyTorch-exported ONNX models served by Caliper give the same outputs as ONNX Runtime called directly.
 *
 * Models: Debian's libonnx-testdata `pytorch-converted` and `pytorch-operator` cases (each a model.onnx
 * exported by PyTorch plus test_data_set_0/input_N.pb and PyTorch's own output_N.pb):
 *   A. every case ONNX Runtime loads as shipped (these are opset 6, two are opset 12), small enough for JSON;
 *   B. a representative set re-targeted to opset 13 and to opset 17, as `torch.onnx.export(opset_version=13/17,
 *      dynamic_axes={input: {0: 'N'}})` writes them (Gemm, MatMul, Conv, MaxPool, AveragePool, BatchNorm,
 *      Relu, Sigmoid, Softmax, LogSoftmax, GLU, Softsign...), including the cases that ORT only refuses as
 *      shipped because of their pre-opset-7 operator versions (Gemm-6, BatchNormalization-6, AveragePool-1).
 * Each is served from a temp model repository with a model.yaml written here: an `array` request field per
 * model input (length = per-row element count), preprocess `{ identity: field }` with `shape` = per-row dims,
 * postprocess `{ output: NAME }` per output. Then
 *   (a) POST /v2/models/{name}/infer with input_N.pb's values (flat JSON data) must match a direct
 *       onnxruntime-node run of the same file within 1e-6, and PyTorch's output_N.pb within 1e-6
 *       (relative above magnitude 1, where float32's own spacing exceeds 1e-6);
 *   (b) where every input has rows along its first dimension (a batch axis N, or the fixed size the model was
 *       traced at: 1, 2, 4...), POST /models/{name}/predict with one instance per row must match the same
 *       direct run within 1e-6; a fixed size takes exactly that many instances (anything else is a 400).
 * The two examples' /predict answers are compared with a direct run on features computed by hand.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { decodeTensor, encodeModel, readModelFile } from '../../src/optimize/onnx/model-io.ts';
import { AttributeType, TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { AttributeProto, ModelProto, NodeProto, TensorProto } from '../../src/optimize/onnx/onnx-types.ts';
import { tensorValues } from '../../src/optimize/onnx/tensor-values.ts';
import { readFashionMnist } from '../../src/optimize/datasets/idx-reader.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const TESTDATA = '/usr/share/libonnx-testdata/data';
const SUITES = ['pytorch-converted', 'pytorch-operator'] as const;
/** Larger inputs (the 1000x1000 MaxPool, the 20x16x50x40 Conv) would only measure JSON parsing. */
const MAX_INPUT_ELEMENTS = 50_000;
const TOLERANCE = 1e-6;

type Numbers = Float32Array | Float64Array | BigInt64Array | Int32Array;
interface Tensor {
  type: 'float32' | 'int64';
  dims: number[];
  data: number[];
}
interface ConformanceCase {
  /** Served model name. */
  name: string;
  source: string;
  opset: number;
  model: Uint8Array;
  inputs: (Tensor & { name: string })[];
  /** Output names, in the model's order. */
  outputs: string[];
  /** ONNX Runtime called directly on the same file and inputs. */
  direct: Record<string, Tensor>;
  /** PyTorch's reference outputs (output_N.pb), by output name. */
  reference: Record<string, Tensor>;
  /** The first dimension of the input and outputs is named N. */
  batchAxis: boolean;
  /** How /predict can be asked: not at all, one object (every first dimension is 1), or one instance per row. */
  predict: 'none' | 'single' | 'rows';
}

const toNumbers = (values: Numbers): number[] => Array.from(values as ArrayLike<number | bigint>, Number);

function readPb(path: string): Tensor {
  const proto = decodeTensor(readFileSync(path));
  const type = proto.dataType === TensorDataType.INT64 ? 'int64' : 'float32';
  return { type, dims: (proto.dims ?? []).map(Number), data: toNumbers(tensorValues(proto) as Numbers) };
}

const maxAbsDiff = (a: readonly number[], b: readonly number[]): number =>
  a.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b[i]!)), 0);

/** |a - b| <= 1e-6, scaled by |b| above 1 (float32 spacing is 9.5e-7 at 8, 1.9e-6 at 16). */
function expectClose(actual: readonly number[], expected: readonly number[], what: string, relative = false): void {
  expect(actual.length, `${what}: element count`).toBe(expected.length);
  const bad = actual.findIndex(
    (v, i) => !(Math.abs(v - expected[i]!) <= TOLERANCE * (relative ? Math.max(1, Math.abs(expected[i]!)) : 1)),
  );
  expect(
    bad,
    `${what}: element ${bad} is ${actual[bad]}, expected ${expected[bad]} (max |diff| ${maxAbsDiff(actual, expected)})`,
  ).toBe(-1);
}

// ---------- re-targeting the opset-6 exports to opset 13 / 17 ----------

const int64Initializer = (name: string, values: number[]): TensorProto => ({
  name,
  dims: [values.length],
  dataType: TensorDataType.INT64,
  rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer),
});

const attr = (node: NodeProto, name: string): AttributeProto | undefined =>
  node.attribute?.find((a) => a.name === name);
const dropAttrs = (node: NodeProto, ...names: string[]): void => {
  node.attribute = (node.attribute ?? []).filter((a) => !names.includes(a.name ?? ''));
};

/**
 * The model as PyTorch writes it at `opset` (IR 8): the operator-version differences between opset 6 and
 * 13+ rewritten (legacy `broadcast`/`is_test`/`spatial` attributes dropped, Squeeze/Unsqueeze axes and
 * Split sizes moved to inputs, Softmax axis made explicit), initializers no longer listed as graph inputs
 * and, with `batchAxis`, the first dimension of the input and outputs named N. Only rewrites that keep the
 * meaning; the test checks the result against PyTorch's own outputs.
 */
function retarget(source: ModelProto, opset: number, batchAxis: boolean): ModelProto {
  const model = structuredClone(source);
  const graph = model.graph!;
  model.irVersion = 8;
  model.opsetImport = [{ domain: '', version: opset }];
  const initializers = graph.initializer ?? (graph.initializer = []);
  const initialized = new Set(initializers.map((t) => t.name));
  graph.input = (graph.input ?? []).filter((i) => !initialized.has(i.name));
  graph.valueInfo = [];
  for (const node of graph.node ?? []) {
    switch (node.opType) {
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
        if (attr(node, 'axis'))
          throw new Error(`${node.opType} with a legacy broadcast axis has no opset-13 equivalent`);
        dropAttrs(node, 'broadcast');
        break;
      case 'Gemm':
        dropAttrs(node, 'broadcast');
        break;
      case 'BatchNormalization':
        if ((attr(node, 'spatial')?.i ?? 1) !== 1) throw new Error('BatchNormalization spatial=0');
        dropAttrs(node, 'is_test', 'spatial', 'consumed_inputs');
        node.output = node.output!.slice(0, 1);
        break;
      case 'Squeeze':
      case 'Unsqueeze': {
        const axes = attr(node, 'axes');
        if (axes) {
          const name = `${node.output![0]}__axes`;
          initializers.push(int64Initializer(name, (axes.ints ?? []).map(Number)));
          node.input = [...node.input!, name];
          dropAttrs(node, 'axes');
        }
        break;
      }
      case 'Split': {
        const split = attr(node, 'split');
        if (split) {
          const name = `${node.output![0]}__split`;
          initializers.push(int64Initializer(name, (split.ints ?? []).map(Number)));
          node.input = [node.input![0]!, name];
          dropAttrs(node, 'split');
        }
        break;
      }
      case 'Softmax':
      case 'LogSoftmax': {
        // Opset < 13 flattened to 2-D at `axis` (default 1); these exports are 2-D, where that is axis 1 = last.
        const axis = attr(node, 'axis')?.i ?? 1;
        dropAttrs(node, 'axis');
        node.attribute = [...(node.attribute ?? []), { name: 'axis', type: AttributeType.INT, i: axis }];
        break;
      }
      case 'PRelu':
      case 'Pow':
        throw new Error(`${node.opType}-${opset} broadcasts differently from its opset-6 form`);
      default:
        break;
    }
  }
  if (batchAxis) {
    for (const value of [...graph.input, ...(graph.output ?? [])]) {
      const dims = value.type!.tensorType!.shape!.dim!;
      dims[0] = { dimParam: 'N' };
    }
  }
  return model;
}

/** Cases re-targeted to opset 13 and 17; batchAxis where every row is computed on its own. */
const RETARGETED: { source: string; batchAxis: boolean }[] = [
  { source: 'pytorch-converted/test_Linear', batchAxis: true }, // Gemm (ORT has no Gemm-6)
  { source: 'pytorch-converted/test_Linear_no_bias', batchAxis: true }, // Transpose + MatMul
  { source: 'pytorch-converted/test_BatchNorm2d_eval', batchAxis: true }, // BatchNormalization (no BN-6 either)
  { source: 'pytorch-converted/test_BatchNorm1d_3d_input_eval', batchAxis: true },
  { source: 'pytorch-converted/test_AvgPool2d', batchAxis: true }, // AveragePool (no AveragePool-1 either)
  { source: 'pytorch-converted/test_AvgPool3d', batchAxis: true },
  { source: 'pytorch-converted/test_AvgPool1d', batchAxis: true }, // Unsqueeze + AveragePool + Squeeze
  { source: 'pytorch-converted/test_Conv2d', batchAxis: true },
  { source: 'pytorch-converted/test_Conv2d_depthwise_strided', batchAxis: true },
  { source: 'pytorch-converted/test_Conv1d_dilated', batchAxis: true },
  { source: 'pytorch-converted/test_MaxPool2d', batchAxis: true },
  { source: 'pytorch-converted/test_MaxPool3d_stride_padding', batchAxis: true },
  { source: 'pytorch-converted/test_ReLU', batchAxis: true },
  { source: 'pytorch-converted/test_Sigmoid', batchAxis: true },
  { source: 'pytorch-converted/test_Softmax', batchAxis: true },
  { source: 'pytorch-converted/test_LogSoftmax', batchAxis: true },
  { source: 'pytorch-converted/test_GLU', batchAxis: true }, // Split + Sigmoid + Mul (no Mul-6 either)
  { source: 'pytorch-converted/test_Softsign', batchAxis: true }, // Abs + Add + Div
  { source: 'pytorch-operator/test_operator_addmm', batchAxis: false }, // two chained Gemms, three inputs
  { source: 'pytorch-operator/test_operator_mm', batchAxis: false },
  // Add, Mul, Tanh, Sigmoid, Neg; its [2, 2] parameter broadcasts against the first dimension, so that is no batch axis.
  { source: 'pytorch-operator/test_operator_params', batchAxis: false },
];

// ---------- building the cases (at collection time, so that each gets its own test) ----------

async function runDirect(
  model: Uint8Array,
  inputs: ConformanceCase['inputs'],
): Promise<{ outputs: string[]; results: Record<string, Tensor> }> {
  const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of inputs) {
      feeds[input.name] =
        input.type === 'int64'
          ? new ort.Tensor('int64', BigInt64Array.from(input.data.map(BigInt)), input.dims)
          : new ort.Tensor('float32', Float32Array.from(input.data), input.dims);
    }
    const run = await session.run(feeds);
    const results: Record<string, Tensor> = {};
    for (const name of session.outputNames) {
      const t = run[name]!;
      results[name] = {
        type: t.type === 'int64' ? 'int64' : 'float32',
        dims: [...t.dims],
        data: toNumbers(t.data as Numbers),
      };
    }
    return { outputs: [...session.outputNames], results };
  } finally {
    await session.release();
  }
}

async function buildCase(
  name: string,
  source: string,
  model: ModelProto,
  predict: (inputs: Tensor[], batchAxis: boolean) => ConformanceCase['predict'],
  batchAxis: boolean,
): Promise<ConformanceCase | undefined> {
  const dir = join(TESTDATA, source, 'test_data_set_0');
  const bytes = encodeModel(model);
  const initialized = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  const inputNames = (model.graph?.input ?? []).map((i) => i.name!).filter((n) => !initialized.has(n));
  const inputs = inputNames.map((n, i) => ({ name: n, ...readPb(join(dir, `input_${i}.pb`)) }));
  if (inputs.some((t) => t.data.length > MAX_INPUT_ELEMENTS || t.dims.length === 0)) return undefined;
  let direct: Awaited<ReturnType<typeof runDirect>>;
  try {
    direct = await runDirect(bytes, inputs);
  } catch {
    return undefined; // ORT 1.30 has no kernel for this operator version (Gemm-6, BatchNormalization-6, AveragePool-1, ...)
  }
  const reference: Record<string, Tensor> = {};
  direct.outputs.forEach((o, i) => {
    reference[o] = readPb(join(dir, `output_${i}.pb`));
  });
  // JSON has no NaN or Infinity (test_operator_sqrt of negative numbers).
  if (Object.values(direct.results).some((t) => t.data.some((v) => !Number.isFinite(v)))) return undefined;
  const opset = model.opsetImport?.find((o) => !o.domain)?.version ?? 0;
  return {
    name,
    source,
    opset,
    model: bytes,
    inputs,
    outputs: direct.outputs,
    direct: direct.results,
    reference,
    batchAxis,
    predict: predict(inputs, batchAxis),
  };
}

/** /predict needs every input to have rows along its first dimension, all the same count (fixed, or N). */
function predictMode(inputs: Tensor[], batchAxis: boolean): ConformanceCase['predict'] {
  const firsts = new Set(inputs.map((t) => (t.dims.length > 1 ? t.dims[0] : -1)));
  if (firsts.size !== 1 || firsts.has(-1)) return 'none';
  return firsts.has(1) && !batchAxis ? 'single' : 'rows';
}

const asShipped: ConformanceCase[] = [];
for (const suite of SUITES) {
  for (const entry of readdirSync(join(TESTDATA, suite)).sort()) {
    const source = `${suite}/${entry}`;
    const built = await buildCase(
      `pt_${entry.replace(/^test_/, '')}`,
      source,
      readModelFile(join(TESTDATA, source, 'model.onnx')),
      predictMode,
      false,
    );
    if (built) asShipped.push(built);
  }
}
const retargeted: ConformanceCase[] = [];
for (const { source, batchAxis } of RETARGETED) {
  for (const opset of [13, 17]) {
    const model = retarget(readModelFile(join(TESTDATA, source, 'model.onnx')), opset, batchAxis);
    const built = await buildCase(
      `pt_${source.split('/')[1]!.replace(/^test_/, '')}_opset${opset}`,
      source,
      model,
      predictMode,
      batchAxis,
    );
    if (!built) throw new Error(`${source} re-targeted to opset ${opset} does not load or run in ONNX Runtime`);
    retargeted.push(built);
  }
}

// ---------- serving ----------

const perRow = (dims: readonly number[]): number => dims.slice(1).reduce((a, b) => a * b, 1);

/** model.yaml for raw-tensor serving: one array field per input, identity preprocess, one postprocess field per output. */
function modelYaml(c: ConformanceCase): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  const tensors = c.inputs.map((t, i) => {
    const field = `in${i}`;
    const items = t.type === 'int64' ? 'integer' : 'number';
    inputs[field] = t.dims.length === 1 ? { type: items } : { type: 'array', items, length: perRow(t.dims) };
    return { tensor: t.name, dtype: t.type, columns: [{ identity: field }], shape: t.dims.slice(1) };
  });
  const postprocess = Object.fromEntries(c.outputs.map((o, i) => [`out${i}`, { output: o }]));
  return {
    name: c.name,
    description: `${c.source} (opset ${c.opset})`,
    inputs,
    preprocess: { tensors },
    postprocess,
    instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
    warmup: { runs: 1 },
  };
}

const repo = new TempModelRepository();
let server: RunningServer;

async function post(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as unknown };
}

const flatten = (value: unknown): number[] => (Array.isArray(value) ? value.flatMap(flatten) : [value as number]);

beforeAll(async () => {
  for (const c of [...asShipped, ...retargeted]) repo.add(c.name, modelYaml(c), c.model);
  repo.addFiles('fraud_detector', 'examples/fraud-detector/model.yaml', 'examples/fraud-detector/1/model.onnx');
  repo.addFiles('fashion_mnist', 'examples/fashion-mnist/model.yaml', 'examples/fashion-mnist/1/model.onnx');
  server = await startServing({ paths: [repo.dir], port: 0, logger: createLogger('silent') });
});

afterAll(async () => {
  await server?.close();
  repo.remove();
});

describe('the libonnx-testdata PyTorch models', () => {
  it('finds the cases: as shipped, and re-targeted to opset 13 and 17', () => {
    // 79 of the 117 cases load in ORT 1.30, fit in JSON and have finite outputs; a drop means the discovery or ORT broke.
    expect(asShipped.length).toBeGreaterThanOrEqual(75);
    const ops = new Set(asShipped.flatMap((c) => c.source));
    for (const must of [
      'test_Conv2d',
      'test_Conv3d',
      'test_MaxPool2d',
      'test_ReLU',
      'test_Sigmoid',
      'test_Softmax',
      'test_Linear_no_bias',
      'test_Embedding',
    ]) {
      expect(
        [...ops].some((s) => s.endsWith(`/${must}`)),
        must,
      ).toBe(true);
    }
    expect(retargeted.map((c) => c.opset).sort()).toEqual([
      ...Array(RETARGETED.length).fill(13),
      ...Array(RETARGETED.length).fill(17),
    ]);
  });

  it('loads every one of them (model.yaml checked against the ONNX signature)', () => {
    expect(server.repository.failures.map((f) => `${f.name}: ${f.reason}`)).toEqual([]);
    for (const c of [...asShipped, ...retargeted]) expect(server.repository.has(c.name), c.name).toBe(true);
  });

  it('the re-targeted models still compute what PyTorch computed (the rewrite kept the meaning)', () => {
    for (const c of retargeted) {
      for (const o of c.outputs)
        expectClose(c.direct[o]!.data, c.reference[o]!.data, `${c.name} ${o} direct ORT vs PyTorch`, true);
    }
  });

  for (const c of [...asShipped, ...retargeted]) {
    const what = `${c.source} (opset ${c.opset}${c.batchAxis ? ', batch axis N' : ''})`;

    it(`${what}: /v2 infer matches ONNX Runtime and PyTorch`, async () => {
      const { status, json } = await post(`/v2/models/${c.name}/infer`, {
        id: c.name,
        inputs: c.inputs.map((t) => ({
          name: t.name,
          shape: t.dims,
          datatype: t.type === 'int64' ? 'INT64' : 'FP32',
          data: t.data,
        })),
      });
      expect(status, JSON.stringify(json).slice(0, 300)).toBe(200);
      const body = json as { id: string; outputs: { name: string; shape: number[]; data: number[] }[] };
      expect(body.id).toBe(c.name);
      expect(body.outputs.map((o) => o.name)).toEqual(c.outputs);
      for (const output of body.outputs) {
        expect(output.shape).toEqual(c.direct[output.name]!.dims);
        expectClose(output.data, c.direct[output.name]!.data, `${output.name} vs direct ORT`);
        expectClose(output.data, c.reference[output.name]!.data, `${output.name} vs PyTorch's output`, true);
      }
    });

    if (c.predict !== 'none') {
      it(`${what}: /predict matches ONNX Runtime`, async () => {
        const rows = c.predict === 'single' ? 1 : c.inputs[0]!.dims[0]!;
        const instance = (r: number): Record<string, unknown> =>
          Object.fromEntries(
            c.inputs.map((t, i) => {
              const size = perRow(t.dims);
              const values = t.data.slice(r * size, (r + 1) * size);
              return [`in${i}`, t.dims.length === 1 ? values[0] : values];
            }),
          );
        const { status, json } = await post(
          `/models/${c.name}/predict`,
          c.predict === 'single' ? instance(0) : { instances: Array.from({ length: rows }, (_, r) => instance(r)) },
        );
        expect(status, JSON.stringify(json).slice(0, 300)).toBe(200);
        const predictions =
          c.predict === 'single'
            ? [json as Record<string, unknown>]
            : (json as { predictions: Record<string, unknown>[] }).predictions;
        expect(predictions).toHaveLength(rows);
        c.outputs.forEach((o, i) => {
          const served = predictions.flatMap((p) => flatten(p[`out${i}`]));
          expectClose(served, c.direct[o]!.data, `/predict out${i} (${o}) vs direct ORT`);
        });
      });
    }
  }
});

describe('a first dimension that is not a batch axis', () => {
  it('/predict on a model traced at a fixed batch size takes exactly that many instances, else a 400 saying so', async () => {
    const c = asShipped.find((r) => r.name === 'pt_Conv2d')!;
    expect(c.inputs[0]!.dims[0]).toBe(2);
    const row = c.inputs[0]!.data.slice(0, perRow(c.inputs[0]!.dims));
    for (const body of [{ in0: row }, { instances: [{ in0: row }, { in0: row }, { in0: row }] }]) {
      const { status, json } = await post('/models/pt_Conv2d/predict', body);
      expect(status).toBe(400);
      expect((json as { error: string }).error).toMatch(/exactly 2 rows per run/);
    }
    const { status } = await post('/models/pt_Conv2d/predict', { instances: [{ in0: row }, { in0: row }] });
    expect(status).toBe(200);
  });

  it('/predict refuses to answer several instances row by row rather than mixing rows up', async () => {
    // test_operator_params with its first dimension (wrongly) named N: one row [1, 2] + the [2, 2] parameter gives two rows.
    const c = retargeted.find((r) => r.name === 'pt_operator_params_opset13')!;
    const rows = await startServing({ paths: [mislabeled.dir], port: 0, logger: createLogger('silent') });
    try {
      const instances = [0, 1].map((r) => ({ in0: c.inputs[0]!.data.slice(r * 2, r * 2 + 2) }));
      const response = await fetch(`${rows.url}/models/params_rows/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ instances }),
      });
      const body = (await response.json()) as { error?: string; predictions?: { out0: number[] }[] };
      expect(response.status, JSON.stringify(body)).toBe(500);
      expect(body.error).toMatch(/output "6" has shape \[2, 2\] for a one-row input/);
      // One instance is one run: the answer is that run's, unmixed.
      const single = await fetch(`${rows.url}/v2/models/params_rows/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: '0', shape: [2, 2], datatype: 'FP32', data: c.inputs[0]!.data }] }),
      });
      expect(single.status).toBe(200);
      expectClose(
        ((await single.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data,
        c.direct['6']!.data,
        'v2 on the whole tensor',
      );
    } finally {
      await rows.close();
    }
  });
});

const mislabeled = new TempModelRepository();
beforeAll(() => {
  const source = readModelFile(join(TESTDATA, 'pytorch-operator/test_operator_params/model.onnx'));
  const model = retarget(source, 13, true);
  mislabeled.add(
    'params_rows',
    {
      name: 'params_rows',
      inputs: { in0: { type: 'array', items: 'number', length: 2 } },
      preprocess: { tensor: '0', columns: [{ identity: 'in0' }] },
      postprocess: { out0: { output: '6' } },
      instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
    },
    model,
  );
});
afterAll(() => mislabeled.remove());

// ---------- the examples ----------

const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'];
const FASHION_LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

async function directRun(
  modelPath: string,
  input: string,
  data: Float32Array,
  dims: number[],
  output: string,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(modelPath);
  try {
    const result = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
    return result[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('the examples against a direct ONNX Runtime run', () => {
  it('fraud_detector: log1p(amount), log1p(seconds)/10 and the one-hot, computed by hand', async () => {
    const transactions = [
      { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 },
      { transaction_amount: 9000, merchant_category: 'jewelry', time_since_last_txn: 2 },
      { transaction_amount: 8, merchant_category: 'grocery', time_since_last_txn: 90_000 },
      { transaction_amount: 0, merchant_category: 'online', time_since_last_txn: 0 },
      { transaction_amount: 1200, merchant_category: 'travel', time_since_last_txn: 45 },
    ];
    const features = Float32Array.from(
      transactions.flatMap((t) => [
        Math.log1p(t.transaction_amount),
        Math.log1p(t.time_since_last_txn) / 10,
        ...CATEGORIES.map((c) => (c === t.merchant_category ? 1 : 0)),
      ]),
    );
    const direct = Array.from(
      await directRun(
        'examples/fraud-detector/1/model.onnx',
        'features',
        features,
        [transactions.length, 10],
        'fraud_probability',
      ),
    );
    expect(new Set(direct.map((p) => p > 0.7)).size, 'the cases should include fraud and not fraud').toBe(2);

    const batch = await post('/models/fraud_detector/predict', { instances: transactions });
    expect(batch.status).toBe(200);
    const predictions = (batch.json as { predictions: { fraud_probability: number; is_fraud: boolean }[] }).predictions;
    expectClose(
      predictions.map((p) => p.fraud_probability),
      direct,
      'fraud_probability (instances)',
    );
    expect(predictions.map((p) => p.is_fraud)).toEqual(direct.map((p) => p > 0.7));
    for (const [i, t] of transactions.entries()) {
      const single = await post('/models/fraud_detector/predict', t);
      expect(single.status).toBe(200);
      const body = single.json as { fraud_probability: number; is_fraud: boolean };
      expectClose([body.fraud_probability], [direct[i]!], `fraud_probability (transaction ${i})`);
      expect(body.is_fraud).toBe(direct[i]! > 0.7);
    }
  });

  it('fashion_mnist: pixels/255, then softmax and top-3 labels computed by hand', async () => {
    const sample = (
      JSON.parse(readFileSync('examples/fashion-mnist/sample-request.json', 'utf8')) as { pixels: number[] }
    ).pixels;
    const test = readFashionMnist('t10k');
    const images = [sample, ...[0, 1, 2, 3].map((k) => Array.from(test.images.subarray(k * 784, (k + 1) * 784)))];
    const logits = await directRun(
      'examples/fashion-mnist/1/model.onnx',
      'pixels',
      Float32Array.from(images.flat(), (p) => p / 255),
      [images.length, 784],
      'logits',
    );
    const expected = images.map((_, r) => {
      const row = Array.from(logits.subarray(r * 10, (r + 1) * 10));
      const max = Math.max(...row);
      const exps = row.map((v) => Math.exp(v - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      return exps
        .map((e, i) => ({ label: FASHION_LABELS[i]!, probability: e / sum }))
        .sort((a, b) => b.probability - a.probability)
        .slice(0, 3);
    });

    const { status, json } = await post('/models/fashion_mnist/predict', {
      instances: images.map((pixels) => ({ pixels })),
    });
    expect(status).toBe(200);
    const predictions = (json as { predictions: { top3: { label: string; probability: number }[] }[] }).predictions;
    expect(predictions).toHaveLength(images.length);
    predictions.forEach((p, r) => {
      expect(
        p.top3.map((t) => t.label),
        `image ${r}`,
      ).toEqual(expected[r]!.map((t) => t.label));
      expectClose(
        p.top3.map((t) => t.probability),
        expected[r]!.map((t) => t.probability),
        `image ${r} probabilities`,
      );
    });
    const single = await post('/models/fashion_mnist/predict', { pixels: sample });
    expect(single.status).toBe(200);
    const top3 = (single.json as { top3: { label: string; probability: number }[] }).top3;
    expect(top3.map((t) => t.label)).toEqual(expected[0]!.map((t) => t.label));
    expectClose(
      top3.map((t) => t.probability),
      expected[0]!.map((t) => t.probability),
      'single image probabilities',
    );
  });
});
