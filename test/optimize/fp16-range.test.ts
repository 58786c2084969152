import { describe, expect, it } from 'vitest';
import { compareOutputs } from '../../src/optimize/evaluate/output-comparison.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { encodeModel } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { float32Tensor, openSession } from '../../src/optimize/onnx/ort-session.ts';
import { quantize } from '../../src/optimize/index.ts';

const FLOAT = TensorDataType.FLOAT;
const noLatency = { latencyBatchSizes: [] as number[] };

/**
 * y = (x / (x - x + eps)) * tiny_scale + x * big_scale * 1e-5: eps = 1e-12 underflows float16 (x - x + 0 = 0: the
 * division gives inf/NaN) and big_scale = 1e5 overflows it (inf).
 */
function outOfRangeModel(): ModelProto {
  const b = new GraphBuilder('ranges', 17);
  b.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
  b.initializer(tensorFromArray('eps', [1], Float32Array.from([1e-12])));
  b.initializer(tensorFromArray('big_scale', [1], Float32Array.from([1e5])));
  b.initializer(tensorFromArray('tiny_scale', [1], Float32Array.from([1e-3])));
  b.initializer(tensorFromArray('shrink', [1], Float32Array.from([1e-5])));
  const [zero] = b.node('Sub', ['x', 'x']);
  const [denominator] = b.node('Add', [zero!, 'eps']);
  const [ratio] = b.node('Div', ['x', denominator!]);
  const [left] = b.node('Mul', [ratio!, 'tiny_scale']);
  const [grown] = b.node('Mul', ['x', 'big_scale']);
  const [right] = b.node('Mul', [grown!, 'shrink']);
  b.node('Add', [left!, right!], {}, ['y']);
  b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
  return b.build();
}

describe("fp16 conversion of constants outside float16's range", () => {
  it('clamps them into range with a warning naming each, and the converted model answers finite values', async () => {
    const { model, report } = await quantize(outOfRangeModel(), { mode: 'fp16', ...noLatency });
    const warnings = report.warnings.join('\n');
    expect(warnings).toMatch(/eps: 1 value\(s\) outside float16's range \(e\.g\. 1e-12\) clamped to ±2\^-24/);
    expect(warnings).toMatch(/big_scale: 1 value\(s\) outside float16's range \(e\.g\. 100000\) clamped to ±65504/);
    expect(warnings).not.toMatch(/tiny_scale|shrink/);
    const session = await openSession(encodeModel(model));
    const y = (await session.run({ x: float32Tensor(Float32Array.from([0.5, 2, 1, 3]), [2, 2]) })).y!
      .data as Float32Array;
    for (const v of y) expect(Number.isFinite(v)).toBe(true);
    expect(report.outputDifference.nonFinite).toBe(0);
  });

  it('the comparison flags NaN and infinite outputs of a converted model', async () => {
    const build = (divisor: number): ModelProto => {
      const b = new GraphBuilder('div', 17);
      b.input({ name: 'x', elemType: FLOAT, shape: ['N', 2] });
      b.initializer(tensorFromArray('d', [1], Float32Array.from([divisor])));
      b.node('Div', ['x', 'd'], {}, ['y']);
      b.output({ name: 'y', elemType: FLOAT, shape: ['N', 2] });
      return b.build();
    };
    const before = await openSession(encodeModel(build(2)));
    const after = await openSession(encodeModel(build(0)));
    const feeds = { x: float32Tensor(Float32Array.from([1, 0, -1, 2]), [2, 2]) };
    const { difference } = await compareOutputs(before, after, [{ feeds, rows: 2 }]);
    expect(difference.nonFinite).toBe(4);
    expect(difference.maxAbs).toBe(Infinity);
  });
});
