import * as tf from '@tensorflow/tfjs';

export const CONV_KERNEL = 3;

/** A [3, 3, C, 9C] kernel whose convolution copies each 3×3×C neighbourhood into the channels, ordered (ky, kx, c). */
function patchKernel(channels: number): tf.Tensor4D {
  const size = CONV_KERNEL * CONV_KERNEL * channels;
  const values = new Float32Array(size * size);
  for (let ky = 0; ky < CONV_KERNEL; ky++)
    for (let kx = 0; kx < CONV_KERNEL; kx++)
      for (let c = 0; c < channels; c++) {
        const row = (ky * CONV_KERNEL + kx) * channels + c;
        values[row * size + row] = 1;
      }
  return tf.tensor4d(values, [CONV_KERNEL, CONV_KERNEL, channels, size]);
}

function filterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, kernelShape: [number, number, number, number]): tf.Tensor4D {
  const channels = x.shape[3];
  const eye = patchKernel(channels);
  const patches = tf.reshape<tf.Rank.R2>(tf.conv2d(x, eye, 1, 'same'), [-1, CONV_KERNEL * CONV_KERNEL * channels]);
  eye.dispose();
  const out = dy.shape[3];
  return tf.reshape(tf.matMul(tf.transpose(patches), tf.reshape<tf.Rank.R2>(dy, [-1, out])), kernelShape);
}

function make(inputGradient: boolean) {
  return tf.customGrad((...inputs) => {
    const [x, kernel, save] = inputs as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([x, kernel]);
    return {
      value: tf.conv2d(x, kernel, 1, 'same'),
      gradFunc: (dy: tf.Tensor, [xs, ks]: tf.Tensor[]) => {
        const x4 = xs as tf.Tensor4D;
        const k4 = ks as tf.Tensor4D;
        const dx = inputGradient ? tf.conv2dTranspose(dy as tf.Tensor4D, k4, x4.shape, 1, 'same') : tf.zerosLike(x4);
        return [dx, filterGradient(x4, dy as tf.Tensor4D, k4.shape)];
      },
    };
  });
}
const withInputGradient = make(true);
const withoutInputGradient = make(false);

/**
 * A 3×3 'same' convolution (NHWC input, HWIO kernel) with a hand-written gradient: the wasm backend has
 * no Conv2DBackpropFilter kernel, so the filter gradient is patchesᵀ · dy, where the patches come from
 * one convolution with a fixed copy kernel (XNNPACK-fast, unlike 9 slices and a concat); the input
 * gradient uses the backend's Conv2DBackpropInput. `inputGradient` false for a first layer fed data.
 */
export function convolve3x3(x: tf.Tensor4D, kernel: tf.Tensor4D, inputGradient = true): tf.Tensor4D {
  return (inputGradient ? withInputGradient(x, kernel) : withoutInputGradient(x, kernel)) as tf.Tensor4D;
}
