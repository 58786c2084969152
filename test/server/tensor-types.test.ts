import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

/** x of `elemType` [N, 4] → y = Cast(x, FLOAT): what a quantized vision model's uint8 image input looks like. */
function castModel(elemType: number): ModelProto {
  const g = new GraphBuilder('cast', 17);
  g.input({ name: 'x', elemType, shape: ['N', 4] });
  g.node('Cast', ['x'], { to: TensorDataType.FLOAT }, ['y']);
  g.output({ name: 'y', elemType: TensorDataType.FLOAT, shape: ['N', 4] });
  return g.build();
}

const CASES = [
  { dtype: 'uint8', onnx: TensorDataType.UINT8, good: [0, 255, 7, 128], bad: 256, limits: '0 to 255' },
  { dtype: 'int8', onnx: TensorDataType.INT8, good: [-128, 127, 0, -5], bad: -129, limits: '-128 to 127' },
  { dtype: 'uint16', onnx: TensorDataType.UINT16, good: [0, 65535, 1, 2], bad: -1, limits: '0 to 65535' },
  { dtype: 'int16', onnx: TensorDataType.INT16, good: [-32768, 32767, 0, 9], bad: 40000, limits: '-32768 to 32767' },
  {
    dtype: 'uint32',
    onnx: TensorDataType.UINT32,
    good: [0, 4294967295, 1, 2],
    bad: 4294967296,
    limits: '0 to 4294967295',
  },
  {
    dtype: 'uint64',
    onnx: TensorDataType.UINT64,
    good: [0, 2 ** 53 - 1, 1, 2],
    bad: -3,
    limits: '0 to 18446744073709551615',
  },
  { dtype: 'bool', onnx: TensorDataType.BOOL, good: [1, 0, 1, 1], bad: undefined, limits: '' },
  {
    dtype: 'float16',
    onnx: TensorDataType.FLOAT16,
    good: [1.5, -2, 65504, 0.25],
    bad: 70000,
    limits: '-65504 to 65504',
  },
];

let repo: TempModelRepository;
let server: RunningServer;

beforeAll(async () => {
  repo = new TempModelRepository();
  for (const c of CASES) {
    repo.add(
      c.dtype,
      {
        name: c.dtype,
        inputs: { pixels: { type: 'array', items: 'number', length: 4 } },
        preprocess: { tensor: 'x', dtype: c.dtype, columns: [{ identity: 'pixels' }] },
        postprocess: { y: { output: 'y' } },
        instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
      },
      castModel(c.onnx),
    );
  }
  server = await startServing({ paths: [repo.dir], port: 0, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await server?.close();
  repo?.remove();
});

async function predict(model: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.url}/models/${model}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('every onnxruntime-node input type through preprocess.dtype', () => {
  for (const c of CASES) {
    it(`${c.dtype}: builds the tensor from request values and refuses values outside the type`, async () => {
      expect(server.repository.has(c.dtype)).toBe(true);
      const ok = await predict(c.dtype, { pixels: c.good });
      expect(ok.status).toBe(200);
      expect(ok.json.y).toEqual(c.good.map(Math.fround));
      if (c.bad === undefined) return;
      const bad = await predict(c.dtype, {
        instances: [{ pixels: c.good }, { pixels: [c.good[0], c.bad, c.good[2], c.good[3]] }],
      });
      expect(bad.status).toBe(400);
      expect(bad.json.error).toBe(
        `instances[1].pixels[1]: ${c.bad} does not fit preprocess tensor x (${c.dtype}: ${c.limits}${c.dtype === 'float16' ? '' : ', after rounding'})`,
      );
    });
  }
});
