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
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** Epochs without eval improvement before stopping (default 3). */
  patience?: number;
  /**
   * Translation augmentation of image samples: every epoch each training image moves by a random offset of up to
   * this many pixels per axis (zero-filled), and the teacher's logits are taken on the moved images (default 0:
   * none). The hard-label baseline sees the same moved images.
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
    epochs: options.epochs ?? 10,
    batchSize: options.batchSize ?? 128,
    learningRate: options.learningRate ?? 1e-3,
    patience: options.patience ?? 3,
    qat: options.qat ?? false,
    seed: options.seed ?? 1,
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
