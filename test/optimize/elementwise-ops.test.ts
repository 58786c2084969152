/*
 * The one list of shape-preserving ops (src/optimize/onnx/elementwise-ops.ts) feeds two analyses: shape inference
 * and the batch-axis proof. For every op listed, what each analysis concludes.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray, type AttributeValue } from '../../src/optimize/onnx/graph-builder.ts';
import { ELEMENTWISE_OPS, NORMALIZATION_OPS } from '../../src/optimize/onnx/elementwise-ops.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { inferValueTypes } from '../../src/optimize/onnx/shape-inference.ts';
import { batchAxisOf } from '../../src/runtime/batch-axis.ts';
import type { ModelSignature } from '../../src/runtime/model-signature.ts';

const { FLOAT, INT32 } = TensorDataType;

/** x [N, ...rest] → op (with `params` as initializers after x) → y, declared without shapes so both analyses work it out. */
function oneOp(
  op: string,
  options: {
    rest?: number[];
    elemType?: number;
    attributes?: Record<string, AttributeValue>;
    params?: Float32Array[];
  } = {},
): ModelProto {
  const { rest = [4], elemType = FLOAT, attributes = {}, params = [] } = options;
  const g = new GraphBuilder(op, 17);
  g.input({ name: 'x', elemType, shape: ['N', ...rest] });
  const names = params.map((p, i) => g.initializer(tensorFromArray(`p${i}`, [p.length], p)));
  g.node(op, ['x', ...names], attributes, ['y']);
  const model = g.build();
  model.graph!.output = [{ name: 'y' }];
  return model;
}

/** Served signature: x [-1, ...rest] unnamed, y of unknown dims: only the graph walk can prove y row-aligned. */
function signature(rest: number[]): ModelSignature {
  return {
    inputs: [{ name: 'x', type: 'float32', shape: [-1, ...rest], dimNames: [undefined, ...rest.map(() => undefined)] }],
    outputs: [
      { name: 'y', type: 'float32', shape: [-1, ...rest], dimNames: [undefined, ...rest.map(() => undefined)] },
    ],
  };
}

const channels = (n: number, value: number) => new Float32Array(n).fill(value);

describe('element-wise ops: the shape and type kept, rows kept apart', () => {
  it.each(ELEMENTWISE_OPS.map((op) => [op]))('%s', (op) => {
    const elemType = op === 'BitwiseNot' ? INT32 : FLOAT;
    const model = oneOp(op, { elemType });
    expect(inferValueTypes(model).get('y')).toEqual({ elemType, shape: ['N', 4] });
    expect(batchAxisOf(signature([4]), model)).toEqual({ batchable: true, proof: 'inferred' });
  });
});

/** Per normalization: a configuration that keeps rows apart and, where one exists, one that mixes them. */
const NORMALIZATIONS: Record<
  string,
  {
    rest: number[];
    params?: Float32Array[];
    rowwise: Record<string, AttributeValue>;
    mixing?: Record<string, AttributeValue>;
  }
> = {
  Softmax: { rest: [4], rowwise: { axis: 1 }, mixing: { axis: 0 } },
  LogSoftmax: { rest: [4], rowwise: { axis: -1 }, mixing: { axis: 0 } },
  Hardmax: { rest: [4], rowwise: { axis: 1 }, mixing: { axis: 0 } },
  LpNormalization: { rest: [4], rowwise: {}, mixing: { axis: 0 } },
  LayerNormalization: { rest: [4], params: [channels(4, 1)], rowwise: {}, mixing: { axis: 0 } },
  MeanVarianceNormalization: { rest: [4, 3, 3], rowwise: { axes: [2, 3] }, mixing: {} },
  BatchNormalization: {
    rest: [4],
    params: [channels(4, 1), channels(4, 0), channels(4, 0), channels(4, 1)],
    rowwise: {},
    mixing: { training_mode: 1 },
  },
  InstanceNormalization: { rest: [4, 3], params: [channels(4, 1), channels(4, 0)], rowwise: {} },
  LRN: { rest: [4, 3, 3], rowwise: { size: 3 } },
};

describe('shape-preserving normalizations: the shape and type kept, rows apart only as their axes say', () => {
  it('every listed normalization has a case here', () => {
    expect(Object.keys(NORMALIZATIONS).sort()).toEqual([...NORMALIZATION_OPS].sort());
  });

  it.each(NORMALIZATION_OPS.map((op) => [op]))('%s', (op) => {
    const { rest, params, rowwise, mixing } = NORMALIZATIONS[op]!;
    const rowModel = oneOp(op, { rest, attributes: rowwise, ...(params ? { params } : {}) });
    expect(inferValueTypes(rowModel).get('y')).toEqual({ elemType: FLOAT, shape: ['N', ...rest] });
    expect(batchAxisOf(signature(rest), rowModel)).toEqual({ batchable: true, proof: 'inferred' });
    if (mixing) {
      const mixed = oneOp(op, { rest, attributes: mixing, ...(params ? { params } : {}) });
      expect(inferValueTypes(mixed).get('y')).toEqual({ elemType: FLOAT, shape: ['N', ...rest] });
      expect(batchAxisOf(signature(rest), mixed)).toMatchObject({
        batchable: false,
        reason: expect.stringContaining('"y"'),
      });
    }
  });
});
