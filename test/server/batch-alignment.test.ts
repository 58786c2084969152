import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/grpc-client.ts';
import type { InferenceClientError } from '../../src/client/client-error.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { batchAxisOf } from '../../src/runtime/batch-axis.ts';
import type { ModelSignature } from '../../src/runtime/model-signature.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const FLOAT = TensorDataType.FLOAT;

/**
 * A detector-like model: x [N, 2] → dets [K, 2], the rows of x whose sum is positive (Compress along axis 0), so K
 * depends on the whole batch. `outputDim` is what the file declares for dets' first dimension.
 */
function detectorModel(outputDim: string): ModelProto {
  const g = new GraphBuilder('detector', 17);
  g.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
  g.initializer(tensorFromArray('axis1', [1], BigInt64Array.from([1n])));
  const [sums] = g.node('ReduceSum', ['x', 'axis1'], { keepdims: 0 });
  g.initializer(tensorFromArray('zero', [], Float32Array.from([0])));
  const [keep] = g.node('Greater', [sums!, 'zero']);
  g.node('Compress', ['x', keep!], { axis: 0 }, ['dets']);
  g.output({ name: 'dets', elemType: FLOAT, shape: [outputDim, 2] });
  return g.build();
}

/** x [N, 2] → total [1, 2] = the sum over the batch (a reduction over axis 0), and ids [N, 1] (unnamed in the file). */
function reductionModel(): ModelProto {
  const g = new GraphBuilder('reduction', 17);
  g.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
  g.initializer(tensorFromArray('axis0', [1], BigInt64Array.from([0n])));
  g.node('ReduceSum', ['x', 'axis0'], { keepdims: 1 }, ['total']);
  g.output({ name: 'total', elemType: FLOAT, shape: [1, 2] });
  return g.build();
}

/** x [N, 2] → prior [4, 2] = a fixed table plus the batch mean: a fixed first dimension. */
function fixedFirstDimModel(): ModelProto {
  const g = new GraphBuilder('fixed', 17);
  g.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
  g.initializer(tensorFromArray('table', [4, 2], Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8])));
  const [mean] = g.node('ReduceMean', ['x'], { keepdims: 0 });
  g.node('Add', ['table', mean!], {}, ['prior']);
  g.output({ name: 'prior', elemType: FLOAT, shape: [4, 2] });
  return g.build();
}

/** x [N, 2] → y = x·W + b, with the output's batch dimension under another name (as tf2onnx writes them). */
function renamedBatchModel(): ModelProto {
  const g = new GraphBuilder('renamed', 17);
  g.input({ name: 'x', elemType: FLOAT, shape: ['unk__1', 2] });
  g.initializer(tensorFromArray('W', [2, 2], Float32Array.from([1, 0, 0, 2])));
  g.initializer(tensorFromArray('b', [2], Float32Array.from([10, 20])));
  const [mm] = g.node('MatMul', ['x', 'W']);
  const [y] = g.node('Add', [mm!, 'b']);
  g.node('Relu', [y!], {}, ['y']);
  g.output({ name: 'y', elemType: FLOAT, shape: ['unk__2', 2] });
  return g.build();
}

const batching = { max_batch_size: 8, preferred_batch_sizes: [3], max_queue_delay_us: 200_000 };
const yaml = (name: string, output: string) => ({
  name,
  inputs: { x: { type: 'array', items: 'number', length: 2 } },
  preprocess: { tensor: 'x', columns: [{ identity: 'x' }] },
  postprocess: { [output]: { output } },
  batching,
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
});

let repo: TempModelRepository;
let server: RunningServer;
let grpc: GrpcInferenceClient;
const warnings: string[] = [];

beforeAll(async () => {
  repo = new TempModelRepository();
  repo.add('detector', yaml('detector', 'dets'), detectorModel('K'));
  repo.add('liar', yaml('liar', 'dets'), detectorModel('N'));
  repo.add('reduction', yaml('reduction', 'total'), reductionModel());
  repo.add('fixed', yaml('fixed', 'prior'), fixedFirstDimModel());
  repo.add('renamed', yaml('renamed', 'y'), renamedBatchModel());
  const logger = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        warnings.push(line);
      },
    },
  );
  server = await startServing({ paths: [repo.dir], port: 0, grpcPort: 0, logger });
  grpc = new GrpcInferenceClient({ address: `127.0.0.1:${server.grpc!.port}` });
});

afterAll(async () => {
  grpc?.close();
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

async function get(path: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${server.url}${path}`)).json()) as Record<string, unknown>;
}

/** Three clients' rows: each request's own answer must never contain another's. */
const ROWS = [
  [[1, 2]],
  [
    [3, 4],
    [-9, -9],
  ],
  [[5, 6]],
];

describe('batch axis decided at load', () => {
  it('serves a model whose outputs are not row-aligned one request per run, and says why', async () => {
    for (const [name, output] of [
      ['detector', 'dets'],
      ['reduction', 'total'],
      ['fixed', 'prior'],
    ] as const) {
      const meta = await get(`/v2/models/${name}`);
      expect(meta.batchable).toBe(false);
      expect(meta.batchable_reason).toContain(`"${output}"`);
      const stats = (await get(`/v2/models/${name}/stats`)).model_stats as Record<string, unknown>[];
      expect(stats[0]).toMatchObject({ batchable: false });
      expect(warnings.find((w) => w.includes(`model ${name} version 1: dynamic batching disabled`))).toContain(
        `\\"${output}\\"`,
      );
    }
  });

  it('proves a batch axis through the graph when the file names the dims differently', async () => {
    const meta = await get('/v2/models/renamed');
    expect(meta.batchable).toBe(true);
    expect(server.repository.version('renamed').batchAxis).toEqual({ batchable: true, proof: 'inferred' });
    expect(await get('/v2/models/liar')).toMatchObject({ batchable: true });
  });

  it('answers concurrent /predict requests to a detector each with its own detections', async () => {
    const answers = await Promise.all(
      ROWS.map((rows) => post('/models/detector/predict', { instances: rows.map((x) => ({ x })) })),
    );
    // Multi-row requests of a non-batchable model run row by row; a K-row output cannot be split per instance.
    expect(answers[0]!.json.predictions).toEqual([{ dets: [1, 2], latency_ms: expect.any(Number) }]);
    expect(answers[2]!.json.predictions).toEqual([{ dets: [5, 6], latency_ms: expect.any(Number) }]);
    expect(answers[1]!.status).toBe(500);
    expect(String(answers[1]!.json.error)).toContain('"dets"');
    const singles = await Promise.all(
      [
        [1, 2],
        [3, 4],
        [-9, -9],
      ].map((x) => post('/models/detector/predict', { x })),
    );
    expect(singles.map((s) => s.json.dets)).toEqual([[1, 2], [3, 4], []]);
  });

  it('answers concurrent v2 and gRPC requests to a detector each with its own rows', async () => {
    const v2 = await Promise.all(
      ROWS.map((rows) =>
        post('/v2/models/detector/infer', {
          inputs: [{ name: 'x', datatype: 'FP32', shape: [rows.length, 2], data: rows.flat() }],
        }),
      ),
    );
    expect(v2.map((r) => (r.json.outputs as { data: number[] }[])[0]!.data)).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const viaGrpc = await Promise.all(
      ROWS.map((rows) =>
        grpc.infer('detector', [
          { name: 'x', datatype: 'FP32', shape: [rows.length, 2], data: Float32Array.from(rows.flat()) },
        ]),
      ),
    );
    expect(viaGrpc.map((r) => [...(r.outputs.dets!.data as Float32Array)])).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(viaGrpc.map((r) => r.outputs.dets!.shape)).toEqual([
      [1, 2],
      [1, 2],
      [1, 2],
    ]);
  });

  it("answers reductions over the batch per request, never over other clients' rows", async () => {
    const v2 = await Promise.all(
      ROWS.map((rows) =>
        post('/v2/models/reduction/infer', {
          inputs: [{ name: 'x', datatype: 'FP32', shape: [rows.length, 2], data: rows.flat() }],
        }),
      ),
    );
    expect(v2.map((r) => (r.json.outputs as { data: number[] }[])[0]!.data)).toEqual([
      [1, 2],
      [-6, -5],
      [5, 6],
    ]);
    const viaGrpc = await Promise.all(
      ROWS.map((rows) =>
        grpc.infer('fixed', [
          { name: 'x', datatype: 'FP32', shape: [rows.length, 2], data: Float32Array.from(rows.flat()) },
        ]),
      ),
    );
    const means = ROWS.map((rows) => rows.flat().reduce((a, b) => a + b, 0) / rows.flat().length);
    viaGrpc.forEach((r, i) =>
      expect([...(r.outputs.prior!.data as Float32Array)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((v) => v + means[i]!)),
    );
    const predicted = await Promise.all(
      [
        [1, 2],
        [5, 6],
      ].map((x) => post('/models/reduction/predict', { x })),
    );
    expect(predicted.map((p) => p.json.total)).toEqual([
      [1, 2],
      [5, 6],
    ]);
  });
});

describe('batch axis checked at run time', () => {
  it('fails a batch whose output is not row-aligned with a 500 naming the output, over /predict, v2 and gRPC', async () => {
    // The file claims dets has the inputs' batch dimension "N"; a batch of 3 rows answers 2: nobody gets a mixed answer.
    const singleRows = [
      [1, 2],
      [-9, -9],
      [5, 6],
    ];
    const predicted = await Promise.all(singleRows.map((x) => post('/models/liar/predict', { x })));
    for (const answer of predicted) {
      expect(answer.status).toBe(500);
      expect(String(answer.json.error)).toMatch(/output "dets" has shape \[2, 2\] for a batch of 3 rows/);
    }
    const v2 = await Promise.all(
      singleRows.map((x) =>
        post('/v2/models/liar/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: x }] }),
      ),
    );
    for (const answer of v2) {
      expect(answer.status).toBe(500);
      expect(String(answer.json.error)).toContain('"dets"');
    }
    const viaGrpc = await Promise.allSettled(
      singleRows.map((x) =>
        grpc.infer('liar', [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: Float32Array.from(x) }]),
      ),
    );
    for (const answer of viaGrpc) {
      expect(answer.status).toBe('rejected');
      const error = (answer as PromiseRejectedResult).reason as InferenceClientError;
      expect(error.code).toBe('CALIPER_OUTPUT_NOT_ALIGNED');
      expect(error.message).toContain('"dets"');
    }
    // Aligned batches still batch and split: three positive rows give three rows back, one each.
    const aligned = await Promise.all(
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ].map((x) => post('/models/liar/predict', { x })),
    );
    expect(aligned.map((a) => a.json.dets)).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
  });

  it('batches a proven model and splits each answer back to its request', async () => {
    const answers = await Promise.all(
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ].map((x) => post('/models/renamed/predict', { x })),
    );
    expect(answers.map((a) => a.json.y)).toEqual([
      [11, 24],
      [13, 28],
      [15, 32],
    ]);
    const stats = (await get('/v2/models/renamed/stats')).model_stats as { batch_stats: { batch_size: number }[] }[];
    expect(stats[0]!.batch_stats.map((b) => b.batch_size)).toContain(3);
  });
});

describe('batchAxisOf', () => {
  const unnamed = (shape: number[]): { shape: number[]; dimNames: undefined[] } => ({
    shape,
    dimNames: shape.map(() => undefined),
  });
  const sig = (outputs: number[][]): ModelSignature => ({
    inputs: [{ name: 'x', type: 'float32', ...unnamed([-1, 4]) }],
    outputs: outputs.map((shape, i) => ({ name: `y${i}`, type: 'float32', ...unnamed(shape) })),
  });
  const graph = (build: (g: GraphBuilder) => void): ModelProto => {
    const g = new GraphBuilder('g', 17);
    g.input({ name: 'x', elemType: FLOAT, shape: ['N', 4] });
    build(g);
    return g.build();
  };
  const out = (g: GraphBuilder, name: string, rank: number): void => {
    g.output({ name, elemType: FLOAT, shape: Array.from({ length: rank }, (_, i) => `d${i}`) });
  };

  it('proves row-wise graphs and refuses anything mixing or reshaping rows', () => {
    const softmaxRows = graph((g) => {
      g.node('Softmax', ['x'], { axis: 1 }, ['y0']);
      out(g, 'y0', 2);
    });
    expect(batchAxisOf(sig([[-1, 4]]), softmaxRows)).toMatchObject({ batchable: true });
    const softmaxBatch = graph((g) => {
      g.node('Softmax', ['x'], { axis: 0 }, ['y0']);
      out(g, 'y0', 2);
    });
    expect(batchAxisOf(sig([[-1, 4]]), softmaxBatch)).toMatchObject({
      batchable: false,
      reason: expect.stringContaining('"y0"'),
    });
    const flattenAll = graph((g) => {
      g.initializer(tensorFromArray('shape', [1], BigInt64Array.from([-1n])));
      g.node('Reshape', ['x', 'shape'], {}, ['y0']);
      out(g, 'y0', 1);
    });
    expect(batchAxisOf(sig([[-1]]), flattenAll)).toMatchObject({ batchable: false });
    const keepRows = graph((g) => {
      g.initializer(tensorFromArray('shape', [3], BigInt64Array.from([0n, 2n, 2n])));
      g.node('Reshape', ['x', 'shape'], {}, ['y0']);
      out(g, 'y0', 3);
    });
    expect(batchAxisOf(sig([[-1, 2, 2]]), keepRows)).toMatchObject({ batchable: true });
    const embedding = graph((g) => {
      g.initializer(tensorFromArray('table', [10, 3], new Float32Array(30)));
      const [ids] = g.node('Cast', ['x'], { to: TensorDataType.INT64 });
      g.node('Gather', ['table', ids!], { axis: 0 }, ['y0']);
      out(g, 'y0', 3);
    });
    expect(batchAxisOf(sig([[-1, 4, 3]]), embedding)).toMatchObject({ batchable: true });
    const nonZero = graph((g) => {
      g.node('NonZero', ['x'], {}, ['y0']);
      out(g, 'y0', 2);
    });
    expect(batchAxisOf(sig([[-1, -1]]), nonZero)).toMatchObject({ batchable: false });
    const transposed = graph((g) => {
      g.node('Transpose', ['x'], { perm: [1, 0] }, ['y0']);
      out(g, 'y0', 2);
    });
    expect(batchAxisOf(sig([[-1, -1]]), transposed)).toMatchObject({ batchable: false });
  });

  it('takes matching symbolic names as proof and refuses inputs without a dynamic first dimension', () => {
    const named = (inDim: string, outDim: string): ModelSignature => ({
      inputs: [{ name: 'x', type: 'float32', shape: [-1, 4], dimNames: [inDim, undefined] }],
      outputs: [{ name: 'y', type: 'float32', shape: [-1, 1], dimNames: [outDim, undefined] }],
    });
    expect(batchAxisOf(named('batch', 'batch'))).toEqual({ batchable: true, proof: 'symbolic' });
    expect(batchAxisOf(named('batch', 'K'))).toMatchObject({ batchable: false });
    expect(
      batchAxisOf({ inputs: [{ name: 'x', type: 'float32', shape: [2, 4], dimNames: [] }], outputs: [] }),
    ).toMatchObject({ batchable: false, reason: expect.stringContaining('"x" [2, 4] has no dynamic first dimension') });
  });
});
