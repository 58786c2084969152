import * as tf from '@tensorflow/tfjs';

/*
 * x · w with a hand-written gradient. The wasm backend's matMul is about 10× slower with transposeA or
 * transposeB set than on plain operands, and tfjs's own matMul gradient uses exactly those flags; an
 * explicit transpose followed by a plain product is far cheaper.
 */
const withInputGradient = tf.customGrad((...inputs) => {
  const [x, w, save] = inputs as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, [xs, ws]: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor2D, tf.transpose(ws as tf.Tensor2D)),
      tf.matMul(tf.transpose(xs as tf.Tensor2D), dy as tf.Tensor2D),
    ],
  };
});

/** For a first layer: its input is data, so the gradient with respect to it is never used (zeros). */
const withoutInputGradient = tf.customGrad((...inputs) => {
  const [x, w, save] = inputs as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) => [
      tf.zerosLike(xs!),
      tf.matMul(tf.transpose(xs as tf.Tensor2D), dy as tf.Tensor2D),
    ],
  };
});

export function matrixProduct(x: tf.Tensor2D, w: tf.Tensor2D, inputGradient = true): tf.Tensor2D {
  return (inputGradient ? withInputGradient(x, w) : withoutInputGradient(x, w)) as tf.Tensor2D;
}
