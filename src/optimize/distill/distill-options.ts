import type { Dataset, DatasetSpec } from '../datasets/dataset.ts';
import type { FeedSet } from '../datasets/feed-set.ts';
import { invalidOption } from './distill-error.ts';
import type { TrainingProgress, TrainingSettings } from './distill-trainer.ts';
import type { StudentSpec } from './student-spec.ts';

/** Tensors as a data set, or a FeedSet of request rows built by the model's pipeline (one float32 input). */
export type DataSource = Dataset | DatasetSpec | string | FeedSet;

export interface DistillOptions {
  /** Teacher ONNX model: a path or its bytes. */
  teacher: string | Uint8Array;
  train: DataSource;
  /** Evaluation data: the report, and early stopping unless `validationSplit` is given (the report falls back to the training data without it). */
  eval?: DataSource;
  /**
   * Hold out the last N training samples (a fraction of them when < 1) for early stopping, so that epochs are
   * never selected on the data the report scores. `trainSamples` then counts from the start of the rest.
   */
  validationSplit?: number;
  student: string | StudentSpec;
  /** Softening temperature (default 1: on the Fashion-MNIST bench every T > 1 did worse). */
  temperature?: number;
  /** Weight of the teacher term (default 0.5; 1 needs no labels). */
  alpha?: number;
  /** Training epochs (default 20; the learning rate follows a cosine over them). */
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /**
   * Epochs without improvement on the early-stopping data before stopping (default: `epochs`, i.e. train the whole
   * schedule; the best epoch's weights are kept either way).
   */
  patience?: number;
  /**
   * Translation augmentation of image samples: every epoch each training image moves by a random offset of up to
   * this many pixels per axis (zero-filled), and the teacher's logits are taken on the moved images. The hard-label
   * baseline sees the same moved images. Default: `defaultAugmentShift` (1 px for images, 0 for anything else).
   */
  augmentShift?: number;
  /** Fake-quantize during training so the student quantizes to INT8 without further loss; reports the INT8 row. */
  qat?: boolean;
  /** Also train the student on hard labels only and report it. */
  baseline?: boolean;
  seed?: number;
  /**
   * Train this many students, seeds `seed` … `seed + seeds − 1` (default 1), each with its baseline when `baseline`
   * is set, on the same teacher logits; the report adds mean ± sd over them. The first seed's student is the one
   * written, timed and shown in the report's rows.
   */
  seeds?: number;
  trainSamples?: number;
  evalSamples?: number;
  /** Batch sizes timed, teacher vs student (default [1, 64]; [] skips timing). */
  latencyBatchSizes?: number[];
  /** ONNX Runtime threads for the teacher's logits (default 2); latency is always timed with 1. */
  teacherThreads?: number;
  /** Where to write the student (only after the export check passes). */
  output?: string;
  progress?: DistillProgress;
}

export interface DistillProgress extends TrainingProgress {
  /** A phase starts: 'teacher-logits', 'distill', 'baseline', 'evaluate'. */
  onPhase?(phase: string, total?: number): void;
  onTeacherLogits?(done: number, total: number): void;
}

/**
 * Default epochs, with patience defaulting to the same number (no early stop; the best held-out epoch is kept) and
 * 1-px shifts for images: chosen over three teachers and several seeds (BENCHMARKS.md, "Choosing the distillation
 * defaults") against the former 10 epochs with patience 3 and no shifts.
 */
export const DEFAULT_EPOCHS = 20;

/** Default shift of image samples, in pixels per axis (see `defaultAugmentShift`). */
export const DEFAULT_IMAGE_SHIFT = 1;

/**
 * The translation augmentation used when `augmentShift` is not given: `DEFAULT_IMAGE_SHIFT` pixels when the training
 * samples are known images — an IDX image file (`train.images`), or a teacher whose input takes [C, H, W] samples
 * (NCHW, also what a model.yaml tensor with a three-dimensional `shape` builds) — and 0 for anything else: tables,
 * flat vectors (even of a square length) and [T, F] sequences are never moved unless asked.
 */
export function defaultAugmentShift(train: Pick<Dataset, 'images'>, teacherSampleShape: readonly number[]): number {
  return train.images === true || teacherSampleShape.length === 3 ? DEFAULT_IMAGE_SHIFT : 0;
}

function checkNumber(name: string, value: number, ok: (v: number) => boolean, expected: string): void {
  if (typeof value !== 'number' || Number.isNaN(value) || !ok(value))
    throw invalidOption(`${name} must be ${expected}, got ${String(value)}`);
}

/**
 * The training settings of `options` with their defaults, and the number of seeds to train; checks every number
 * first (validation split included). Throws DistillError CALIPER_DISTILL_INVALID_OPTIONS naming the first bad one.
 */
export function distillSettings(options: DistillOptions): { settings: TrainingSettings; seedCount: number } {
  const settings: TrainingSettings = {
    temperature: options.temperature ?? 1,
    alpha: options.alpha ?? 0.5,
    epochs: options.epochs ?? DEFAULT_EPOCHS,
    batchSize: options.batchSize ?? 128,
    learningRate: options.learningRate ?? 1e-3,
    patience: options.patience ?? options.epochs ?? DEFAULT_EPOCHS,
    qat: options.qat ?? false,
    seed: options.seed ?? 1,
    // Resolved against the data by `defaultAugmentShift` once it is loaded; 0 until then.
    augmentShift: options.augmentShift ?? 0,
  };
  checkNumber('temperature', settings.temperature, (v) => v > 0 && Number.isFinite(v), 'a number > 0');
  checkNumber('alpha', settings.alpha, (v) => v >= 0 && v <= 1, 'a number from 0 to 1');
  checkNumber('epochs', settings.epochs, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  checkNumber('batch size', settings.batchSize, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  checkNumber('learning rate', settings.learningRate, (v) => v > 0 && Number.isFinite(v), 'a number > 0');
  checkNumber('patience', settings.patience, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  checkNumber('augment shift', settings.augmentShift, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  const seedCount = options.seeds ?? 1;
  checkNumber('seeds', seedCount, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  if (options.validationSplit !== undefined)
    checkNumber(
      'validation split',
      options.validationSplit,
      (v) => v > 0 && (v < 1 || Number.isInteger(v)),
      'a fraction in (0, 1) or a whole number of samples',
    );
  return { settings, seedCount };
}
