import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { distillationLoss } from '../../../src/optimize/distill/distillation-loss.ts';
import { useWasmBackend } from '../../../src/optimize/distill/wasm-backend.ts';

function loss(
  student: number[][],
  teacher: number[][] | undefined,
  labels: number[] | undefined,
  temperature: number,
  alpha: number,
): number {
  return tf.tidy(
    () =>
      distillationLoss(
        tf.tensor2d(student),
        teacher ? tf.tensor2d(teacher) : undefined,
        labels ? tf.tensor1d(labels, 'int32') : undefined,
        { temperature, alpha },
      ).dataSync()[0]!,
  );
}

// Teacher logits [ln 3, 0] give softmax [3/4, 1/4]; student logits [0, 0] give [1/2, 1/2]:
// KL = 3/4 ln(3/4 ÷ 1/2) + 1/4 ln(1/4 ÷ 1/2) = 3/4 ln 1.5 − 1/4 ln 2; CE(label 0) = ln 2.
const KL = 0.75 * Math.log(1.5) - 0.25 * Math.log(2);

describe('distillation loss', () => {
  beforeAll(() => useWasmBackend());

  it('is alpha·T²·KL + (1 − alpha)·CE on a hand-computed case', () => {
    expect(KL).toBeCloseTo(0.130812, 6);
    expect(loss([[0, 0]], [[Math.log(3), 0]], [0], 1, 0.5)).toBeCloseTo(0.5 * KL + 0.5 * Math.log(2), 5);
    expect(loss([[0, 0]], [[Math.log(3), 0]], [0], 1, 0.25)).toBeCloseTo(0.25 * KL + 0.75 * Math.log(2), 5);
  });

  it('softens both sides by T and scales the soft term by T²', () => {
    // Teacher logits [2 ln 3, 0] at T = 2 soften to the same [3/4, 1/4]; the student's [0, 0] stays uniform.
    expect(loss([[0, 0]], [[2 * Math.log(3), 0]], undefined, 2, 1)).toBeCloseTo(4 * KL, 5);
  });

  it('with alpha 0 is the hard-label cross-entropy, averaged over the batch', () => {
    // CE of logits [2, 0] against label 1 is ln(1 + e²); against label 0 it is ln(1 + e⁻²).
    const expected = (Math.log(1 + Math.exp(2)) + Math.log(1 + Math.exp(-2))) / 2;
    expect(
      loss(
        [
          [2, 0],
          [2, 0],
        ],
        undefined,
        [1, 0],
        3,
        0,
      ),
    ).toBeCloseTo(expected, 5);
  });

  it('is zero when the student matches the teacher and alpha is 1', () => {
    expect(loss([[1, 2, 3]], [[1, 2, 3]], undefined, 4, 1)).toBeCloseTo(0, 6);
  });

  it('needs labels when alpha < 1 and teacher logits when alpha > 0', () => {
    expect(() => loss([[0, 0]], [[0, 0]], undefined, 1, 0.5)).toThrow(/alpha < 1 needs labels/);
    expect(() => loss([[0, 0]], undefined, [0], 1, 0.5)).toThrow(/alpha > 0 needs teacher logits/);
  });
});
