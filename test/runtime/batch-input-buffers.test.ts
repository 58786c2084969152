import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchInputBuffers, stackParts } from '../../src/runtime/batch-input-buffers.ts';
import { InThreadInstance, type ModelInstance, WorkerInstance } from '../../src/runtime/model-instance.ts';
import type { TensorData } from '../../src/runtime/tensor.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const f32 = (rows: number, width: number, values: number[]): TensorData => ({
  type: 'float32',
  dims: [rows, width],
  data: new Float32Array(values),
});
const values = (t: TensorData | undefined): number[] => Array.from((t?.data ?? []) as ArrayLike<number>, Number);

describe('BatchInputBuffers: one input buffer per model input, reused from batch to batch', () => {
  it('writes each batch’s rows into the front of the same buffer, a view of exactly those rows', () => {
    const buffers = new BatchInputBuffers();
    const first = buffers.stack({ x: [f32(2, 3, [1, 2, 3, 4, 5, 6]), f32(1, 3, [7, 8, 9])] }).x!;
    expect(first.dims).toEqual([3, 3]);
    expect(values(first)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(first.data).toBeInstanceOf(Float32Array);
    const buffer = (first.data as Float32Array).buffer;
    expect(buffer.byteLength).toBe(36);
    const second = buffers.stack({ x: [f32(1, 3, [10, 11, 12]), f32(1, 3, [13, 14, 15])] }).x!;
    expect((second.data as Float32Array).buffer).toBe(buffer);
    expect((second.data as Float32Array).byteOffset).toBe(0);
    expect(second.dims).toEqual([2, 3]);
    expect(values(second)).toEqual([10, 11, 12, 13, 14, 15]);
  });

  it('grows a buffer only when a batch does not fit, to at least twice its size', () => {
    const buffers = new BatchInputBuffers();
    const row = (v: number): TensorData => f32(1, 2, [v, v]);
    const a = buffers.stack({ x: [row(1), row(2)] }).x!.data as Float32Array;
    expect(a.buffer.byteLength).toBe(16);
    const b = buffers.stack({ x: [row(1), row(2), row(3)] }).x!.data as Float32Array;
    expect(b.buffer).not.toBe(a.buffer);
    expect(b.buffer.byteLength).toBe(32);
    const c = buffers.stack({ x: [row(4), row(5), row(6), row(7)] }).x!.data as Float32Array;
    expect(c.buffer).toBe(b.buffer);
    expect(Array.from(c)).toEqual([4, 4, 5, 5, 6, 6, 7, 7]);
    const big = buffers.stack({ x: [f32(10, 2, new Array(20).fill(1)), row(9)] }).x!.data as Float32Array;
    expect(big.buffer.byteLength).toBe(88);
    expect(big.length).toBe(22);
  });

  it('keeps one buffer per input and the element type of each', () => {
    const buffers = new BatchInputBuffers();
    const ids = (v: bigint[]): TensorData => ({ type: 'int64', dims: [1, v.length], data: new BigInt64Array(v) });
    const half = (v: number): TensorData => ({ type: 'float16', dims: [1, 1], data: new Uint16Array([v]) });
    const feeds = buffers.stack({
      x: [f32(1, 1, [1]), f32(1, 1, [2])],
      ids: [ids([2n ** 60n, -3n]), ids([5n, 6n])],
      h: [half(0x3c00), half(0x4000)],
    });
    expect(feeds.ids!.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(feeds.ids!.data as BigInt64Array)).toEqual([2n ** 60n, -3n, 5n, 6n]);
    expect(feeds.ids!.type).toBe('int64');
    expect(feeds.ids!.dims).toEqual([2, 2]);
    expect(feeds.h!.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(feeds.h!.data as Uint16Array)).toEqual([0x3c00, 0x4000]);
    expect(feeds.h!.type).toBe('float16');
    const x = feeds.x!.data as Float32Array;
    expect(x.buffer).not.toBe((feeds.ids!.data as BigInt64Array).buffer);
    expect(x.buffer).not.toBe((feeds.h!.data as Uint16Array).buffer);
  });

  it('passes a single part through as it is and concatenates strings without a buffer', () => {
    const buffers = new BatchInputBuffers();
    const lone = f32(2, 1, [1, 2]);
    expect(buffers.stack({ x: [lone] }).x).toBe(lone);
    const words = buffers.stack({
      s: [
        { type: 'string', dims: [1, 2], data: ['a', 'b'] },
        { type: 'string', dims: [1, 2], data: ['c', 'd'] },
      ],
    }).s!;
    expect(words).toEqual({ type: 'string', dims: [2, 2], data: ['a', 'b', 'c', 'd'] });
  });

  it('stackParts stacks into new buffers every time', () => {
    const parts = { x: [f32(1, 2, [1, 2]), f32(1, 2, [3, 4])] };
    const a = stackParts(parts).x!;
    const b = stackParts(parts).x!;
    expect(values(a)).toEqual([1, 2, 3, 4]);
    expect(a.dims).toEqual([2, 2]);
    expect((a.data as Float32Array).buffer).not.toBe((b.data as Float32Array).buffer);
  });
});

/** x FLOAT [N, 3] → y = Identity(x) (an output ONNX Runtime could hand back in the input's memory) and z = x + 1. */
function identityModel(): ModelProto {
  const g = new GraphBuilder('echo', 17);
  g.input({ name: 'x', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  g.initializer(tensorFromArray('one', [1], new Float32Array([1])));
  g.node('Identity', ['x'], {}, ['y']);
  g.node('Add', ['x', 'one'], {}, ['z']);
  g.output({ name: 'y', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  g.output({ name: 'z', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  return g.build();
}

let repo: TempModelRepository;
let modelPath: string;
beforeAll(() => {
  repo = new TempModelRepository();
  const config = {
    name: 'echo',
    inputs: { x: { type: 'array', items: 'number', length: 3 } },
    preprocess: { tensors: [{ tensor: 'x', columns: [{ identity: 'x' }] }] },
    postprocess: { y: { output: 'y' }, z: { output: 'z' } },
    // Eight requests sent at once leave as one batch of 8: the delay is far longer than their arrival.
    batching: { max_batch_size: 8, preferred_batch_sizes: [8], max_queue_delay_us: 5_000_000 },
    instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
  };
  modelPath = `${repo.add('echo', config, identityModel())}/1/model.onnx`;
  // The rows waiting when a preferred size is reached leave as one batch (not cut to 4); fewer than 4 wait 2 s.
  const waiting = {
    ...config,
    name: 'echo_waiting',
    batching: { max_batch_size: 8, preferred_batch_sizes: [4], cut_to_preferred: false, max_queue_delay_us: 2_000_000 },
  };
  repo.add('echo_waiting', waiting, identityModel());
});
afterAll(() => repo?.remove());

const row = (b: number, r: number): number[] => [100 * b + 10 * r, 100 * b + 10 * r + 1, 100 * b + 10 * r + 2];

describe.each([
  ['in-thread', (spec: Parameters<typeof InThreadInstance.load>[1]) => InThreadInstance.load(0, spec)],
  ['worker', (spec: Parameters<typeof WorkerInstance.load>[1]) => WorkerInstance.load(0, spec)],
])('%s instance: runRows through ONNX Runtime', (_kind, load) => {
  let instance: ModelInstance;
  beforeAll(async () => {
    instance = await load({ modelPath, intraOpThreads: 1, interOpThreads: 1, graphLevel: 'all' });
  });
  afterAll(async () => instance?.release());

  it('two batches of the same size in turn: each keeps its own outputs, even an Identity of the input', async () => {
    const batch = (b: number): TensorData[] => [f32(1, 3, row(b, 0)), f32(2, 3, [...row(b, 1), ...row(b, 2)])];
    const first = await instance.runRows({ x: batch(1) });
    const second = await instance.runRows({ x: batch(2) });
    const third = await instance.runRows({ x: batch(3) }, ['y']);
    const expected = (b: number): number[] => [...row(b, 0), ...row(b, 1), ...row(b, 2)];
    expect(values(first.outputs.y)).toEqual(expected(1));
    expect(values(first.outputs.z)).toEqual(expected(1).map((v) => v + 1));
    expect(values(second.outputs.y)).toEqual(expected(2));
    expect(values(second.outputs.z)).toEqual(expected(2).map((v) => v + 1));
    expect(Object.keys(third.outputs)).toEqual(['y']);
    expect(values(third.outputs.y)).toEqual(expected(3));
    expect(first.outputs.y!.dims).toEqual([3, 3]);
  });
});

describe('a batching in-thread server: concurrent clients, batch after batch', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServing({ paths: [repo.dir], port: 0, logger: quietLogger() });
  });
  afterAll(async () => server?.close());

  it('answers every client with its own rows in each of several batches of 8', async () => {
    for (let b = 1; b <= 3; b++) {
      const answers = await Promise.all(
        Array.from({ length: 8 }, async (_, r) => {
          const response = await fetch(`${server.url}/models/echo/predict`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ x: row(b, r) }),
          });
          expect(response.status).toBe(200);
          return (await response.json()) as { y: number[]; z: number[] };
        }),
      );
      answers.forEach((answer, r) => {
        expect(answer.y).toEqual(row(b, r));
        expect(answer.z).toEqual(row(b, r).map((v) => v + 1));
      });
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const count = /^caliper_batch_size_count\{[^}]*model="echo"[^}]*\} (\d+)$/m.exec(metrics);
    const sum = /^caliper_batch_size_sum\{[^}]*model="echo"[^}]*\} (\d+)$/m.exec(metrics);
    // Three batches of 8: the rows went through the stacked (reused-buffer) path, not one by one.
    expect([Number(count?.[1]), Number(sum?.[1])]).toEqual([3, 24]);
  });
  it('cut_to_preferred false: the rows waiting when a preferred size is reached run as one batch, each answered its own', async () => {
    const post = async (body: unknown) => {
      const response = await fetch(`${server.url}/models/echo_waiting/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(200);
      return response.json() as Promise<Record<string, unknown>>;
    };
    // Three lone rows, short of the preferred size 4: they wait (the delay is 2 s).
    const lone = [0, 1, 2].map((r) => post({ x: row(5, r) }));
    for (let depth = 0; depth < 3; ) {
      await new Promise((r) => setTimeout(r, 5));
      const stats = (await (await fetch(`${server.url}/v2/models/echo_waiting/stats`)).json()) as {
        model_stats: { queue_depth: number }[];
      };
      depth = stats.model_stats[0]!.queue_depth;
    }
    // A request of three rows makes six: cut to the preferred size, three would run and three wait on.
    const three = await post({ instances: [3, 4, 5].map((r) => ({ x: row(5, r) })) });
    const answers = await Promise.all(lone);
    answers.forEach((answer, r) => expect(answer.y).toEqual(row(5, r)));
    expect((three.predictions as { y: number[] }[]).map((p) => p.y)).toEqual([3, 4, 5].map((r) => row(5, r)));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const count = /^caliper_batch_size_count\{[^}]*model="echo_waiting"[^}]*\} (\d+)$/m.exec(metrics);
    const sum = /^caliper_batch_size_sum\{[^}]*model="echo_waiting"[^}]*\} (\d+)$/m.exec(metrics);
    expect([Number(count?.[1]), Number(sum?.[1])]).toEqual([1, 6]);
  });
});
