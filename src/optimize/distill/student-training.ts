import type { Dataset } from '../datasets/dataset.ts';
import { encodeModel } from '../onnx/model-io.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import type { DistillProgress } from './distill-options.ts';
import type { TrainedFigures } from './distill-report.ts';
import {
  type Augmentation,
  trainStudent,
  type LabelledSamples,
  type TrainingProgress,
  type TrainingSettings,
} from './distill-trainer.ts';
import { exportStudent, verifyExport, withProbabilityHead } from './student-export.ts';
import { StudentModel } from './student-model.ts';
import type { StudentSpec } from './student-spec.ts';
import { imageGeometry } from './image-shift.ts';
import { teacherBatchLogits, teacherLogits, type Teacher } from './teacher-model.ts';

/** A trained student, exported to ONNX and checked against its tfjs model; the caller disposes `student`. */
export interface TrainedStudent {
  student: StudentModel;
  model: ModelProto;
  bytes: Uint8Array;
  figures: Omit<TrainedFigures, 'accuracy' | 'agreement'>;
}

/** What the students train on: the training samples and the early-stopping samples, each with the teacher's logits. */
export interface DistillSamples {
  train: LabelledSamples;
  /** Absent when nothing is held out for early stopping. */
  stopOn?: LabelledSamples;
  /** Time spent computing the teacher's logits. */
  teacherLogitsSeconds: number;
}

async function withTeacherLogits(
  teacher: Teacher,
  data: Dataset,
  onProgress: (done: number) => void,
): Promise<LabelledSamples> {
  const logits = await teacherLogits(teacher, data, 1024, onProgress);
  return {
    features: data.features,
    count: data.count,
    teacherLogits: logits,
    ...(data.labels ? { labels: data.labels } : {}),
  };
}

/**
 * Runs the teacher once over `train` and `stopOn` (the 'teacher-logits' phase), so every student trained after
 * reuses its logits. Throws ONNX Runtime's error when the teacher fails on the data.
 */
export async function distillSamples(
  teacher: Teacher,
  train: Dataset,
  stopOn: Dataset | undefined,
  progress: DistillProgress | undefined,
): Promise<DistillSamples> {
  const logitsTotal = train.count + (stopOn?.count ?? 0);
  progress?.onPhase?.('teacher-logits', logitsTotal);
  const logitsStart = performance.now();
  const trainSamples = await withTeacherLogits(teacher, train, (done) =>
    progress?.onTeacherLogits?.(done, logitsTotal),
  );
  const stopOnSamples = stopOn
    ? await withTeacherLogits(teacher, stopOn, (done) => progress?.onTeacherLogits?.(train.count + done, logitsTotal))
    : undefined;
  return {
    train: trainSamples,
    ...(stopOnSamples ? { stopOn: stopOnSamples } : {}),
    teacherLogitsSeconds: (performance.now() - logitsStart) / 1000,
  };
}

/**
 * Trains one student of `spec` with `settings` (alpha 0: the hard-label baseline), exports it to ONNX (with the
 * teacher's probability head for a binary teacher) and checks the export against the trained model on up to 256
 * samples. With `settings.augmentShift` the teacher labels each moved training batch. The student is disposed when
 * this throws.
 */
export async function trainAndExport(
  spec: StudentSpec,
  teacher: Teacher,
  samples: DistillSamples,
  settings: TrainingSettings,
  progress: TrainingProgress | undefined,
): Promise<TrainedStudent> {
  const { train, stopOn } = samples;
  const student = StudentModel.create(spec, teacher.sampleShape, teacher.classes, settings.seed);
  try {
    const augmentation: Augmentation | undefined =
      settings.augmentShift > 0
        ? {
            geometry: imageGeometry(teacher.sampleShape, settings.augmentShift),
            teach: (features, rows) => teacherBatchLogits(teacher, features, rows),
          }
        : undefined;
    const outcome = await trainStudent(student, train, stopOn, settings, progress, augmentation);
    const logitsModel = exportStudent(student, teacher.input.name);
    const check = stopOn ?? train;
    const rows = Math.min(check.count, 256);
    const exportMaxAbsDiff = await verifyExport(
      student,
      logitsModel,
      check.features.subarray(0, rows * (check.features.length / check.count)),
      rows,
    );
    const model = teacher.binary ? withProbabilityHead(logitsModel, teacher.output) : logitsModel;
    const bytes = encodeModel(model);
    return {
      student,
      model,
      bytes,
      figures: {
        parameters: student.parameterCount,
        sizeBytes: bytes.length,
        epochs: outcome.epochs,
        bestEpoch: outcome.bestEpoch,
        stoppedEarly: outcome.stoppedEarly,
        trainSeconds: outcome.seconds,
        exportMaxAbsDiff,
      },
    };
  } catch (error) {
    student.dispose();
    throw error;
  }
}
