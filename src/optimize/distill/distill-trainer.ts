import * as tf from '@tensorflow/tfjs';
import { argmaxRows } from '../evaluate/output-comparison.ts';
import { distillationLoss, type LossSettings } from './distillation-loss.ts';
import { type ImageGeometry, shiftImages, shiftRandom } from './image-shift.ts';
import type { StudentModel } from './student-model.ts';

/** Samples as the trainer reads them: flat features, the cached teacher logits, and labels when known. */
export interface LabelledSamples {
  features: Float32Array;
  count: number;
  teacherLogits?: Float32Array;
  labels?: Int32Array;
}

export interface TrainingSettings extends LossSettings {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Epochs without improvement on the eval data before stopping (the best epoch's weights are kept). */
  patience: number;
  /** Train with fake INT8 quantization of weights and layer inputs. */
  qat: boolean;
  seed: number;
  /**
   * Translation augmentation: each training image is moved by a random offset of up to this many pixels per axis,
   * every epoch anew (0: none). The teacher labels each moved batch (`Augmentation.teach`).
   */
  augmentShift: number;
}

/** How training batches are augmented: the images' layout, and the teacher's logits for a moved batch. */
export interface Augmentation {
  geometry: ImageGeometry;
  /** Logits [rows, classes] for `rows` flat samples; called only when the teacher term is weighed (alpha > 0). */
  teach(features: Float32Array, rows: number): Promise<Float32Array>;
}

export interface EpochResult {
  epoch: number;
  loss: number;
  /** Top-1 accuracy on the eval labels. */
  evalAccuracy?: number;
  /** Share of eval samples where the student picks the teacher's class. */
  evalAgreement?: number;
  seconds: number;
}

export interface TrainingOutcome {
  epochs: EpochResult[];
  /** The epoch whose weights the student holds (1-based). */
  bestEpoch: number;
  stoppedEarly: boolean;
  seconds: number;
}

export interface TrainingProgress {
  onStep?(epoch: number, step: number, steps: number, loss: number): void;
  onEpoch?(result: EpochResult): void;
}

function shuffled(count: number, seed: number): Uint32Array {
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  let state = seed % 2147483647 || 1;
  for (let i = count - 1; i > 0; i--) {
    state = (state * 48271) % 2147483647;
    const j = state % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function evaluate(
  student: StudentModel,
  data: LabelledSamples,
  qat: boolean,
): Pick<EpochResult, 'evalAccuracy' | 'evalAgreement'> {
  const predicted = argmaxRows(student.predict(data.features, data.count, { qat }), data.count);
  const teacher = data.teacherLogits ? argmaxRows(data.teacherLogits, data.count) : undefined;
  let correct = 0;
  let agree = 0;
  for (let i = 0; i < data.count; i++) {
    if (data.labels && predicted[i] === data.labels[i]) correct++;
    if (teacher && predicted[i] === teacher[i]) agree++;
  }
  return {
    ...(data.labels ? { evalAccuracy: correct / data.count } : {}),
    ...(teacher ? { evalAgreement: agree / data.count } : {}),
  };
}

/**
 * Trains the student with Adam on the distillation loss, the learning rate following a cosine from
 * `learningRate` down to 5% of it over the epochs. With eval data, each epoch is scored (accuracy, or
 * agreement with the teacher when the eval data has no labels) and training stops after `patience`
 * epochs without improvement, restoring the best epoch's weights. With `settings.augmentShift` > 0 each batch is
 * moved (`augmentation` is then required) and the teacher's logits are those of the moved batch, so the student
 * matches the teacher on inputs it never saw; the same seed moves the same images the same way for any alpha.
 */
export async function trainStudent(
  student: StudentModel,
  train: LabelledSamples,
  evalData: LabelledSamples | undefined,
  settings: TrainingSettings,
  progress: TrainingProgress = {},
  augmentation?: Augmentation,
): Promise<TrainingOutcome> {
  if (settings.augmentShift > 0 && !augmentation)
    throw new Error('trainStudent: augmentShift > 0 needs the augmentation (image geometry and teacher)');
  const started = performance.now();
  const size = train.features.length / train.count;
  const classes = student.classes;
  const optimizer = tf.train.adam(settings.learningRate);
  // tfjs reads the optimizer's learning rate on every step but exposes no setter; the field is plain JS.
  const schedule = optimizer as unknown as { learningRate: number };
  const steps = Math.ceil(train.count / settings.batchSize);
  const epochs: EpochResult[] = [];
  let best = { score: -Infinity, epoch: 0, weights: undefined as Float32Array[] | undefined };
  let stoppedEarly = false;
  for (let epoch = 1; epoch <= settings.epochs; epoch++) {
    const epochStart = performance.now();
    const progressShare = settings.epochs > 1 ? (epoch - 1) / (settings.epochs - 1) : 0;
    schedule.learningRate = settings.learningRate * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * progressShare)));
    const order = shuffled(train.count, settings.seed * 7919 + epoch);
    const random = settings.augmentShift > 0 ? shiftRandom(settings.seed, epoch) : undefined;
    let lossSum = 0;
    for (let step = 0; step < steps; step++) {
      const rows = Math.min(settings.batchSize, train.count - step * settings.batchSize);
      const x = new Float32Array(rows * size);
      const t = train.teacherLogits && settings.alpha > 0 ? new Float32Array(rows * classes) : undefined;
      const y = train.labels && settings.alpha < 1 ? new Int32Array(rows) : undefined;
      for (let r = 0; r < rows; r++) {
        const index = order[step * settings.batchSize + r]!;
        x.set(train.features.subarray(index * size, (index + 1) * size), r * size);
        t?.set(train.teacherLogits!.subarray(index * classes, (index + 1) * classes), r * classes);
        if (y) y[r] = train.labels![index]!;
      }
      if (random && augmentation) {
        shiftImages(x, rows, augmentation.geometry, settings.augmentShift, random);
        if (t) t.set(await augmentation.teach(x, rows));
      }
      const lossTensor = tf.tidy((): tf.Scalar => {
        const xb = tf.tensor2d(x, [rows, size]);
        const tb = t ? tf.tensor2d(t, [rows, classes]) : undefined;
        const yb = y ? tf.tensor1d(y, 'int32') : undefined;
        return optimizer.minimize(
          () => distillationLoss(student.apply(xb, settings.qat), tb, yb, settings),
          true,
          student.variables,
        )!;
      });
      const loss = lossTensor.dataSync()[0]!;
      lossTensor.dispose();
      lossSum += loss;
      progress.onStep?.(epoch, step + 1, steps, lossSum / (step + 1));
    }
    const result: EpochResult = {
      epoch,
      loss: lossSum / steps,
      ...(evalData ? evaluate(student, evalData, settings.qat) : {}),
      seconds: (performance.now() - epochStart) / 1000,
    };
    epochs.push(result);
    progress.onEpoch?.(result);
    await new Promise((resolve) => setImmediate(resolve));
    const score = result.evalAccuracy ?? result.evalAgreement;
    if (score === undefined) continue;
    if (score > best.score) best = { score, epoch, weights: student.snapshot() };
    else if (epoch - best.epoch >= settings.patience) {
      stoppedEarly = epoch < settings.epochs;
      break;
    }
  }
  optimizer.dispose();
  if (best.weights && best.epoch !== epochs.length) student.restore(best.weights);
  return {
    epochs,
    bestEpoch: best.weights ? best.epoch : epochs.length,
    stoppedEarly,
    seconds: (performance.now() - started) / 1000,
  };
}
