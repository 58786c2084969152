import * as tf from '@tensorflow/tfjs';
import { DistillError } from './distill-error.ts';
import { fakeQuantizeActivations, fakeQuantizeWeights } from './fake-quantization.ts';
import { matrixProduct } from './matrix-product.ts';
import { CONV_KERNEL, convolve3x3 } from './convolution.ts';
import { formatStudentSpec, type StudentSpec } from './student-spec.ts';

/** Image geometry of a CNN student's input, in ONNX's NCHW terms. */
export interface ImageShape {
  channels: number;
  height: number;
  width: number;
}

/** A dense layer: y = x · kernel + bias, kernel [in, out] (as Gemm without transB). */
export interface DenseLayer {
  kind: 'dense';
  kernel: tf.Variable<tf.Rank.R2>;
  bias: tf.Variable<tf.Rank.R1>;
  relu: boolean;
}
/** A 3×3 'same' convolution, kernel [3, 3, in, out] (tfjs HWIO), then ReLU and 2×2 max-pooling. */
export interface ConvLayer {
  kind: 'conv';
  kernel: tf.Variable<tf.Rank.R4>;
  bias: tf.Variable<tf.Rank.R1>;
}
export type StudentLayer = DenseLayer | ConvLayer;

export { CONV_KERNEL };

/**
 * The image a CNN student sees in a sample of `sampleShape` (the teacher's input without its batch
 * dimension): [C, H, W], [H, W], or a flat vector of a square number of values (one channel).
 */
export function imageShapeOf(sampleShape: readonly number[]): ImageShape {
  if (sampleShape.length === 3) return { channels: sampleShape[0]!, height: sampleShape[1]!, width: sampleShape[2]! };
  if (sampleShape.length === 2) return { channels: 1, height: sampleShape[0]!, width: sampleShape[1]! };
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const side = Math.round(Math.sqrt(size));
  if (sampleShape.length === 1 && side * side === size) return { channels: 1, height: side, width: side };
  throw new DistillError(
    'CALIPER_DISTILL_STUDENT_SPEC',
    `a cnn student needs image inputs: samples of shape [C, H, W], [H, W] or a square number of values; the teacher's input takes samples of shape [${sampleShape.join(', ')}] — use an mlp student`,
  );
}

/** A student network held as tfjs variables, so that training, fake quantization and ONNX export see the same weights. */
export class StudentModel {
  private constructor(
    readonly spec: StudentSpec,
    readonly sampleShape: readonly number[],
    readonly classes: number,
    readonly layers: StudentLayer[],
    readonly image: ImageShape | undefined,
  ) {}

  static create(spec: StudentSpec, sampleShape: readonly number[], classes: number, seed = 1): StudentModel {
    const inputSize = sampleShape.reduce((a, b) => a * b, 1);
    const layers: StudentLayer[] = [];
    let nextSeed = seed;
    const normal = (shape: number[], std: number) => tf.randomNormal(shape, 0, std, 'float32', nextSeed++);
    let image: ImageShape | undefined;
    let features = inputSize;
    if (spec.kind === 'cnn') {
      image = imageShapeOf(sampleShape);
      let { channels, height, width } = image;
      for (const out of spec.channels) {
        const fanIn = CONV_KERNEL * CONV_KERNEL * channels;
        layers.push({
          kind: 'conv',
          kernel: tf.variable(normal([CONV_KERNEL, CONV_KERNEL, channels, out], Math.sqrt(2 / fanIn)) as tf.Tensor4D),
          bias: tf.variable(tf.zeros([out]) as tf.Tensor1D),
        });
        channels = out;
        height = Math.floor(height / 2);
        width = Math.floor(width / 2);
        if (height < 1 || width < 1) {
          throw new DistillError(
            'CALIPER_DISTILL_STUDENT_SPEC',
            `student ${formatStudentSpec(spec)} pools a ${image.height}×${image.width} image ${spec.channels.length} times (2×2 each), which leaves nothing; use fewer conv layers`,
          );
        }
      }
      features = channels * height * width;
    }
    const widths = [...spec.hidden, classes];
    widths.forEach((out, i) => {
      const last = i === widths.length - 1;
      layers.push({
        kind: 'dense',
        kernel: tf.variable(normal([features, out], Math.sqrt((last ? 1 : 2) / features)) as tf.Tensor2D),
        bias: tf.variable(tf.zeros([out]) as tf.Tensor1D),
        relu: !last,
      });
      features = out;
    });
    return new StudentModel(spec, [...sampleShape], classes, layers, image);
  }

  get variables(): tf.Variable[] {
    return this.layers.flatMap((l) => [l.kernel, l.bias]);
  }

  get parameterCount(): number {
    return this.variables.reduce((n, v) => n + v.size, 0);
  }

  /** Logits [B, classes] for flat inputs [B, sampleSize]; with `qat`, weights and layer inputs are fake-quantized. */
  apply(x: tf.Tensor2D, qat = false): tf.Tensor2D {
    return tf.tidy(() => {
      let h: tf.Tensor = x;
      const weight = <T extends tf.Tensor>(w: T): T => (qat ? fakeQuantizeWeights(w) : w);
      const input = <T extends tf.Tensor>(a: T): T => (qat ? fakeQuantizeActivations(a) : a);
      if (this.image) {
        const { channels, height, width } = this.image;
        // Samples are stored NCHW (ONNX's layout); tfjs convolves NHWC.
        h =
          channels === 1
            ? tf.reshape(h, [-1, height, width, 1])
            : tf.transpose(tf.reshape(h, [-1, channels, height, width]), [0, 2, 3, 1]);
      }
      this.layers.forEach((layer, index) => {
        if (layer.kind === 'conv') {
          h = convolve3x3(input(h as tf.Tensor4D), weight(layer.kernel), index > 0);
          h = tf.maxPool(tf.relu(tf.add(h, layer.bias)) as tf.Tensor4D, 2, 2, 'valid');
        } else {
          // Back to NCHW before flattening, so the dense weights line up with ONNX's Flatten of NCHW.
          if (h.rank === 4) h = tf.reshape(tf.transpose(h, [0, 3, 1, 2]), [h.shape[0]!, -1]);
          h = tf.add(matrixProduct(input(h as tf.Tensor2D), weight(layer.kernel), index > 0), layer.bias);
          if (layer.relu) h = tf.relu(h);
        }
      });
      return h as tf.Tensor2D;
    });
  }

  /** Logits for `count` flat samples, computed in batches (float unless `qat`). */
  predict(features: Float32Array, count: number, options: { batchSize?: number; qat?: boolean } = {}): Float32Array {
    const batchSize = options.batchSize ?? 1024;
    const size = features.length / count;
    const out = new Float32Array(count * this.classes);
    for (let start = 0; start < count; start += batchSize) {
      const rows = Math.min(batchSize, count - start);
      const logits = tf.tidy(() =>
        this.apply(tf.tensor2d(features.subarray(start * size, (start + rows) * size), [rows, size]), options.qat),
      );
      out.set(logits.dataSync(), start * this.classes);
      logits.dispose();
    }
    return out;
  }

  /** A copy of every weight, to restore the best epoch after early stopping. */
  snapshot(): Float32Array[] {
    return this.variables.map((v) => v.dataSync() as Float32Array).map((d) => d.slice());
  }

  restore(snapshot: Float32Array[]): void {
    this.variables.forEach((v, i) => {
      const values = tf.tensor(snapshot[i]!, v.shape);
      v.assign(values);
      values.dispose();
    });
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}
