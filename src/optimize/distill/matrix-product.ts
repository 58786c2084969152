import * as tf from '@tensorflow/tfjs';

/*
 * x · w with a hand-written gradient. The wasm backend's matMul is about 10× slower with transposeA or
 * transposeB set than on plain operands, and tfjs's own matMul gradient uses exactly those flags; an
 * explicit transpose followed by a plain product is far cheaper.
 */
const withInputGradient = tf.customGrad((...inputs) => {
  const [x, w] = inputs as [tf.Tensor2D, tf.Tensor2D];
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor) => [tf.matMul(dy as tf.Tensor2D, tf.transpose(w)), tf.matMul(tf.transpose(x), dy as tf.Tensor2D)],
  };
});

/** For a first layer: its input is data, so the gradient with respect to it is never used (zeros). */
const withoutInputGradient = tf.customGrad((...inputs) => {
  const [x, w] = inputs as [tf.Tensor2D, tf.Tensor2D];
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor) => [tf.zerosLike(x), tf.matMul(tf.transpose(x), dy as tf.Tensor2D)],
  };
});

export function matrixProduct(x: tf.Tensor2D, w: tf.Tensor2D, inputGradient = true): tf.Tensor2D {
  return (inputGradient ? withInputGradient(x, w) : withoutInputGradient(x, w)) as tf.Tensor2D;
}
