import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { GraphIndex } from '../../src/optimize/onnx/graph.ts';
import { readModelFile, writeModelFile, encodeModel } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import { float32Tensor, openSession } from '../../src/optimize/onnx/ort-session.ts';
import { inferValueTypes } from '../../src/optimize/onnx/shape-inference.ts';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../src/optimize/onnx/tensor-values.ts';

const work = mkdtempSync(join(tmpdir(), 'caliper-onnx-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function mlp() {
  const b = new GraphBuilder('mlp', 17);
  const x = b.input({ name: 'x', elemType: TensorDataType.FLOAT, shape: ['N', 300] });
  const w1 = b.initializer(
    tensorFromArray(
      'w1',
      [300, 20],
      Float32Array.from({ length: 6000 }, (_, i) => Math.sin(i) / 10),
    ),
  );
  const [h] = b.node('MatMul', [x, w1]);
  const [r] = b.node('Relu', [h!]);
  const w2 = b.initializer(
    tensorFromArray(
      'w2',
      [4, 20],
      Float32Array.from({ length: 80 }, (_, i) => Math.cos(i)),
    ),
  );
  const c = b.initializer(tensorFromArray('c', [4], new Float32Array([1, 2, 3, 4])));
  b.node('Gemm', [r!, w2, c], { transB: 1 }, ['y']);
  b.output({ name: 'y', elemType: TensorDataType.FLOAT, shape: ['N', 4] });
  return b.build();
}

describe('graph index', () => {
  it('finds producers, consumers and a topological order of shuffled nodes', () => {
    const model = mlp();
    model.graph!.node!.reverse();
    const index = new GraphIndex(model.graph!);
    expect(index.producer('y')?.opType).toBe('Gemm');
    expect(index.consumers('w1').map((n) => n.opType)).toEqual(['MatMul']);
    expect(index.topologicalOrder().map((n) => n.opType)).toEqual(['MatMul', 'Relu', 'Gemm']);
    expect(index.initializer('c')?.dims).toEqual([4]);
  });

  it('infers element types and shapes through MatMul, Relu and Gemm', () => {
    const types = inferValueTypes(mlp());
    const [matmul, relu] = mlp().graph!.node!;
    expect(types.get(matmul!.output![0]!)).toEqual({ elemType: TensorDataType.FLOAT, shape: ['N', 20] });
    expect(types.get(relu!.output![0]!)?.shape).toEqual(['N', 20]);
    expect(types.get('y')?.shape).toEqual(['N', 4]);
  });
});

describe('external data', () => {
  it('writes large initializers to a data file that ONNX Runtime and the reader both load', async () => {
    const model = mlp();
    const path = join(work, 'ext.onnx');
    writeModelFile(path, model, { externalData: { thresholdBytes: 1024 } });
    expect(readdirSync(work).sort()).toEqual(['ext.onnx', 'ext.onnx.data']);
    expect(statSync(path).size).toBeLessThan(2000);
    const reread = readModelFile(path);
    expect(reread.graph!.initializer!.every((t) => t.dataLocation === undefined)).toBe(true);
    const x = float32Tensor(
      Float32Array.from({ length: 600 }, (_, i) => (i % 7) / 7),
      [2, 300],
    );
    const fromBytes = await (await openSession(encodeModel(model))).run({ x });
    const fromReread = await (await openSession(encodeModel(reread))).run({ x });
    expect(Array.from(fromReread.y!.data as Float32Array)).toEqual(Array.from(fromBytes.y!.data as Float32Array));
  });

  it('refuses an external location outside the model directory', () => {
    const model = mlp();
    model.graph!.initializer![0] = {
      ...model.graph!.initializer![0]!,
      rawData: new Uint8Array(),
      dataLocation: 1,
      externalData: [{ key: 'location', value: '../../etc/passwd' }],
    };
    const path = join(work, 'escape.onnx');
    writeModelFile(path, model);
    expect(() => readModelFile(path)).toThrow(/escapes the model directory/);
  });
});

describe('float16 conversion', () => {
  it('rounds to nearest even, saturates to infinity and keeps subnormals', () => {
    const bits = float32ToFloat16Bits([1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65520, 1e-7, -2, NaN]);
    expect(Array.from(bits.slice(0, 6))).toEqual([0x3c00, 0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x0002]);
    expect(Array.from(float16BitsToFloat32(bits.slice(6, 7)))).toEqual([-2]);
    expect(Number.isNaN(float16BitsToFloat32(bits.slice(7))[0])).toBe(true);
  });
});
