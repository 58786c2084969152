import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../../src/optimize/datasets/dataset.ts';
import { DistillError } from '../../../src/optimize/distill/distill-error.ts';
import { distill } from '../../../src/optimize/distill/distiller.ts';
import { imageGeometry, shiftImages } from '../../../src/optimize/distill/image-shift.ts';
import { GraphBuilder, tensorFromArray } from '../../../src/optimize/onnx/graph-builder.ts';
import { encodeModel } from '../../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../../src/optimize/onnx/onnx-schema.ts';

const SIDE = 8;
const PIXELS = SIDE * SIDE;

/** The class of a pixel's column: 0 for columns 0–2, 1 for 3–4, 2 for 5–7. */
const classOfColumn = (x: number): number => (x < 3 ? 0 : x < 5 ? 1 : 2);

/**
 * A linear teacher on flat 8 × 8 images ([N, 64]): class c's logit sums the pixels of its columns (× 4), so an
 * image with one lit pixel is labelled by that pixel's column.
 */
function columnTeacher(inputShape: (number | string)[] = ['N', PIXELS]): Uint8Array {
  const weights = new Float32Array(PIXELS * 3);
  for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) weights[(y * SIDE + x) * 3 + classOfColumn(x)] = 4;
  const b = new GraphBuilder('column-teacher', 17);
  const input = b.input({ name: 'pixels', elemType: TensorDataType.FLOAT, shape: inputShape });
  const flat = inputShape.length === 2 ? input : b.node('Flatten', [input], { axis: 1 })[0]!;
  b.node(
    'Gemm',
    [
      flat,
      b.initializer(tensorFromArray('w', [PIXELS, 3], weights)),
      b.initializer(tensorFromArray('b', [3], new Float32Array(3))),
    ],
    {},
    ['logits'],
  );
  b.output({ name: 'logits', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  return encodeModel(b.build());
}

/** Images with one lit pixel at (y, x) drawn from `rows` × `columns`, labelled by the teacher. */
function litPixels(count: number, rows: [number, number], columns: [number, number], seed: number): Dataset {
  let state = seed;
  const next = (lo: number, hi: number) => lo + ((state = (state * 48271) % 2147483647) % (hi - lo + 1));
  const features = new Float32Array(count * PIXELS);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const y = next(...rows);
    const x = next(...columns);
    features[i * PIXELS + y * SIDE + x] = 1;
    labels[i] = classOfColumn(x);
  }
  return { source: 'lit-pixels', features, featureShape: [PIXELS], count, labels };
}

describe('shiftImages', () => {
  it('moves each image by its own offset, zero-filling what comes in from outside', () => {
    // Two 1-channel 3 × 3 images; offsets are drawn (dy, dx) per image from the generator: (+1, −1), then (0, 0).
    const batch = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const draws = [5 / 6, 0, 0.5, 0.5]; // 2·1+1 = 3 choices: ⌊u·3⌋ − 1
    shiftImages(batch, 2, { channels: 1, height: 3, width: 3 }, 1, () => draws.shift()!);
    expect(Array.from(batch.subarray(0, 9))).toEqual([0, 0, 0, 2, 3, 0, 5, 6, 0]);
    expect(Array.from(batch.subarray(9))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('moves every channel of a [C, H, W] image the same way', () => {
    const batch = Float32Array.from([1, 2, 3, 4, 10, 20, 30, 40]); // 2 channels of 2 × 2
    const draws = [0, 0.9]; // dy −1, dx +1
    shiftImages(batch, 1, imageGeometry([2, 2, 2], 1), 1, () => draws.shift()!);
    expect(Array.from(batch)).toEqual([0, 3, 0, 0, 0, 30, 0, 0]);
  });

  it('reads [C, H, W], [H, W] and flat square samples as images, and refuses other shapes and shifts that do not fit', () => {
    expect(imageGeometry([784], 2)).toEqual({ channels: 1, height: 28, width: 28 });
    expect(imageGeometry([3, 32, 30], 4)).toEqual({ channels: 3, height: 32, width: 30 });
    expect(imageGeometry([5, 6], 1)).toEqual({ channels: 1, height: 5, width: 6 });
    expect(() => imageGeometry([10], 1)).toThrow(/--augment-shift needs image samples .*shape \[10\]/);
    expect(() => imageGeometry([28, 28], 28)).toThrow(/--augment-shift 28 does not fit 28 × 28 images/);
  });
});

describe('distill --augment-shift', () => {
  // Training images light only columns 3–4 (class 1); the eval images light columns 1–6, reachable by shifts of 2.
  const train = litPixels(400, [2, 5], [3, 4], 7);
  const evalData = litPixels(600, [0, 7], [1, 6], 11);
  const run = (augmentShift: number) =>
    distill({
      teacher: columnTeacher(),
      train,
      eval: evalData,
      student: 'mlp:16',
      alpha: 1,
      epochs: 12,
      patience: 12,
      batchSize: 32,
      learningRate: 0.02,
      augmentShift,
      latencyBatchSizes: [],
    });

  it('the teacher labels the moved images, so the student learns classes the unmoved data never shows', async () => {
    const plain = await run(0);
    const moved = await run(2);
    // Without shifts every training image is class 1 to the teacher: the student answers 1 everywhere (≈ 1/3).
    expect(plain.report.distilled.accuracy).toBeLessThan(0.6);
    expect(moved.report.distilled.accuracy).toBeGreaterThan(0.9);
    expect(moved.report.settings.augmentShift).toBe(2);
  }, 60_000);

  it('the hard-label baseline sees the same moved images with their original labels', async () => {
    const { report } = await distill({
      teacher: columnTeacher(['N', 1, SIDE, SIDE]),
      train: { ...train, featureShape: [1, SIDE, SIDE] },
      eval: { ...evalData, featureShape: [1, SIDE, SIDE] },
      student: 'mlp:16',
      alpha: 1,
      baseline: true,
      epochs: 12,
      patience: 12,
      batchSize: 32,
      learningRate: 0.02,
      augmentShift: 2,
      latencyBatchSizes: [],
    });
    expect(report.distilled.accuracy).toBeGreaterThan(0.9);
    // Its labels stay the unmoved images' class 1: moving the pixel does not teach it the other columns.
    expect(report.baseline!.accuracy).toBeLessThan(0.6);
  }, 60_000);

  it('is refused before training for samples that are no image, and for a shift that is not a whole number', async () => {
    const notImage = await distill({
      teacher: columnTeacher(['N', 8, 8, 1, 1]),
      train: { ...train, featureShape: [8, 8, 1, 1] },
      student: 'mlp:4',
      augmentShift: 1,
      latencyBatchSizes: [],
    }).catch((e: unknown) => e);
    expect(notImage).toBeInstanceOf(DistillError);
    expect((notImage as DistillError).code).toBe('CALIPER_DISTILL_INVALID_OPTIONS');
    expect((notImage as DistillError).message).toMatch(/--augment-shift needs image samples .*\[8, 8, 1, 1\]/);
    const fractional = await distill({
      teacher: columnTeacher(),
      train,
      student: 'mlp:4',
      augmentShift: 1.5,
      latencyBatchSizes: [],
    }).catch((e: unknown) => e);
    expect((fractional as DistillError).message).toMatch(/augment shift must be an integer >= 0, got 1.5/);
  });
});
