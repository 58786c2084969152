import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { convolve3x3 } from '../../../src/optimize/distill/convolution.ts';
import { useWasmBackend } from '../../../src/optimize/distill/wasm-backend.ts';

beforeAll(() => useWasmBackend());

/** The same convolution from differentiable primitives only: 9 shifted slices, concatenated, times the kernel. */
function reference(x: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const padded = tf.pad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const shifts = [];
  for (let y = 0; y < 3; y++) for (let z = 0; z < 3; z++) shifts.push(tf.slice(padded, [0, y, z, 0], [b, h, w, c]));
  const patches = tf.reshape<tf.Rank.R2>(tf.concat(shifts, 3), [b * h * w, 9 * c]);
  return tf.reshape(tf.matMul(patches, tf.reshape<tf.Rank.R2>(kernel, [9 * c, kernel.shape[3]])), [
    b,
    h,
    w,
    kernel.shape[3],
  ]);
}

it('convolve3x3 has the value and gradients of a patches × kernel convolution', () => {
  const x = tf.randomNormal([2, 5, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const kernel = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
  const weights = tf.randomNormal([2, 5, 6, 4], 0, 1, 'float32', 3);
  const loss = (f: (a: tf.Tensor4D, k: tf.Tensor4D) => tf.Tensor4D) => (a: tf.Tensor, k: tf.Tensor) =>
    tf.sum(tf.mul(tf.square(f(a as tf.Tensor4D, k as tf.Tensor4D)), weights));
  const [dxRef, dkRef] = tf.grads(loss(reference))([x, kernel]);
  const [dx, dk] = tf.grads(loss((a, k) => convolve3x3(a, k)))([x, kernel]);
  const [dxNone, dkNone] = tf.grads(loss((a, k) => convolve3x3(a, k, false)))([x, kernel]);
  const close = (a: tf.Tensor, b: tf.Tensor) => expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-3);
  close(convolve3x3(x, kernel), reference(x, kernel));
  close(dx!, dxRef!);
  close(dk!, dkRef!);
  close(dkNone!, dkRef!);
  expect(tf.max(tf.abs(dxNone!)).dataSync()[0]).toBe(0);
  expect(tf.max(tf.abs(dkRef!)).dataSync()[0]).toBeGreaterThan(1);
});
