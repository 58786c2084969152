import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { matrixProduct } from '../../../src/optimize/distill/matrix-product.ts';
import { useWasmBackend } from '../../../src/optimize/distill/wasm-backend.ts';

beforeAll(() => useWasmBackend());

it("matrixProduct has tf.matMul's value and gradients", () => {
  const x = tf.randomNormal([5, 7], 0, 1, 'float32', 1) as tf.Tensor2D;
  const w = tf.randomNormal([7, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
  const weights = tf.randomNormal([5, 3], 0, 1, 'float32', 3);
  const loss = (f: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D) => (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(tf.square(f(a as tf.Tensor2D, b as tf.Tensor2D)), weights));
  const [dxRef, dwRef] = tf.grads(loss((a, b) => tf.matMul(a, b)))([x, w]);
  const [dx, dw] = tf.grads(loss((a, b) => matrixProduct(a, b)))([x, w]);
  const [dxNone, dwNone] = tf.grads(loss((a, b) => matrixProduct(a, b, false)))([x, w]);
  const close = (a: tf.Tensor, b: tf.Tensor) => expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-4);
  close(matrixProduct(x, w), tf.matMul(x, w));
  close(dx!, dxRef!);
  close(dw!, dwRef!);
  close(dwNone!, dwRef!);
  expect(tf.max(tf.abs(dxNone!)).dataSync()[0]).toBe(0);
});
