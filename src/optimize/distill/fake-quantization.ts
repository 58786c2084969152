import * as tf from '@tensorflow/tfjs';

/*
 * Fake quantization for quantization-aware training: values are rounded to the INT8 grid that
 * `caliper quantize --mode dynamic --per-channel` will use, and gradients pass straight through
 * (the straight-through estimator). The grids follow the quantizer's arithmetic:
 *   weights      symmetric int8 in [-127, 127], one scale per output channel (max |w| / 127);
 *   activations  asymmetric uint8 over [min(x, 0), max(x, 0)] of the whole tensor, as
 *                DynamicQuantizeLinear computes it per run.
 * tf.round rounds half to even, as QuantizeLinear does.
 */

/** Wraps a rounding function so that its gradient is the identity. */
function straightThrough(quantize: (x: tf.Tensor) => tf.Tensor): (x: tf.Tensor) => tf.Tensor {
  const grid = tf.customGrad((...inputs) => ({
    value: quantize(inputs[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => dy,
  }));
  return (x) => grid(x);
}

/** Per-output-channel symmetric int8 fake quantization; the output channel is the last axis. */
const weightGrid = straightThrough((w) =>
  tf.tidy(() => {
    const axes = w.shape.map((_, i) => i).slice(0, -1);
    const maxAbs = tf.max(tf.abs(w), axes);
    const scale = tf.where(tf.greater(maxAbs, 0), tf.div(maxAbs, 127), tf.onesLike(maxAbs));
    return tf.mul(tf.clipByValue(tf.round(tf.div(w, scale)), -127, 127), scale);
  }),
);

export function fakeQuantizeWeights<T extends tf.Tensor>(weights: T): T {
  return weightGrid(weights) as T;
}

/** Per-tensor asymmetric uint8 fake quantization over the tensor's own range (which always includes 0). */
const activationGrid = straightThrough((x) =>
  tf.tidy(() => {
    const lo = tf.minimum(tf.min(x), 0);
    const hi = tf.maximum(tf.max(x), 0);
    const scale = tf.maximum(tf.div(tf.sub(hi, lo), 255), 1e-12);
    const zeroPoint = tf.clipByValue(tf.round(tf.div(tf.neg(lo), scale)), 0, 255);
    const q = tf.clipByValue(tf.add(tf.round(tf.div(x, scale)), zeroPoint), 0, 255);
    return tf.mul(tf.sub(q, zeroPoint), scale);
  }),
);

export function fakeQuantizeActivations<T extends tf.Tensor>(activations: T): T {
  return activationGrid(activations) as T;
}
