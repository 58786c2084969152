import { Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { encodeModel } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { GraphProto, ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { float32Tensor, openSession } from '../../src/optimize/onnx/ort-session.ts';
import { quantize } from '../../src/optimize/index.ts';

const FLOAT = TensorDataType.FLOAT;
const noLatency = { latencyBatchSizes: [] as number[] };

/**
 * y = If(flag) then (x · W + b) else (x · V): W and b are outer initializers read only inside the then branch
 * (as exported control flow does); V is read by the else branch. A top-level MatMul keeps something to convert.
 */
function modelWithBranches(): ModelProto {
  const branch = (name: string, build: (b: GraphBuilder) => void): GraphProto => {
    const b = new GraphBuilder(name, 17);
    build(b);
    return b.build().graph!;
  };
  const thenBranch = branch('then', (b) => {
    const [mm] = b.node('MatMul', ['h', 'W']);
    b.node('Add', [mm!, 'bias'], {}, ['then_out']);
    b.output({ name: 'then_out', elemType: FLOAT, shape: ['N', 2] });
  });
  const elseBranch = branch('else', (b) => {
    b.node('MatMul', ['h', 'V'], {}, ['else_out']);
    b.output({ name: 'else_out', elemType: FLOAT, shape: ['N', 2] });
  });
  const b = new GraphBuilder('branches', 17);
  b.input({ name: 'x', elemType: FLOAT, shape: ['N', 3] });
  b.input({ name: 'flag', elemType: TensorDataType.BOOL, shape: [] });
  b.initializer(tensorFromArray('U', [3, 3], Float32Array.from([1, 0, 0, 0, 2, 0, 0, 0, 1])));
  b.initializer(tensorFromArray('W', [3, 2], Float32Array.from([1, 2, 3, 4, 5, 6])));
  b.initializer(tensorFromArray('bias', [2], Float32Array.from([0.5, -0.5])));
  b.initializer(tensorFromArray('V', [3, 2], Float32Array.from([-1, 0, 0, 1, 1, 1])));
  b.node('MatMul', ['x', 'U'], {}, ['h']);
  b.node('If', ['flag'], {}, ['y']);
  b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
  const model = b.build();
  // The builder's attributes are numbers, strings and tensors: the branches are set directly (type 5 = GRAPH).
  const ifNode = model.graph!.node!.find((n) => n.opType === 'If')!;
  ifNode.attribute = [
    { name: 'then_branch', type: 5, g: thenBranch },
    { name: 'else_branch', type: 5, g: elseBranch },
  ];
  return model;
}

async function run(model: ModelProto, flag: boolean): Promise<number[]> {
  const session = await openSession(encodeModel(model));
  const outputs = await session.run({
    x: float32Tensor(Float32Array.from([1, 1, 1, 2, 0, 1]), [2, 3]),
    flag: new Tensor('bool', [flag], []),
  });
  return Array.from(outputs.y!.data as Float32Array);
}

describe('initializers read only inside a subgraph (If branches)', () => {
  it('the original model runs (the reference)', async () => {
    expect(await run(modelWithBranches(), true)).toEqual([12.5, 15.5, 7.5, 9.5]);
    expect(await run(modelWithBranches(), false)).toEqual([0, 3, -1, 1]);
  });

  for (const mode of ['dynamic', 'fp16'] as const) {
    it(`quantize --mode ${mode} keeps them, and the model converts and runs`, async () => {
      const { model } = await quantize(modelWithBranches(), { mode, ...noLatency });
      const names = new Set((model.graph!.initializer ?? []).map((t) => t.name));
      expect([...['W', 'bias', 'V']].filter((n) => !names.has(n))).toEqual([]);
      const [a, b] = [await run(model, true), await run(model, false)];
      [12.5, 15.5, 7.5, 9.5].forEach((v, i) => expect(a[i]).toBeCloseTo(v, 0));
      [0, 3, -1, 1].forEach((v, i) => expect(b[i]).toBeCloseTo(v, 0));
    });
  }
});
