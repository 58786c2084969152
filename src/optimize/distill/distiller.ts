import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadDataset, sampleSize, sliceDataset, type Dataset, type DatasetSpec } from '../datasets/dataset.ts';
import { DatasetError } from '../datasets/dataset-error.ts';
import { datasetFromFeedSet, isFeedSet, type FeedSet } from '../datasets/feed-set.ts';
import { compareLatency, type LatencyComparison } from '../evaluate/latency.ts';
import { classDecision, type ClassDecision } from '../evaluate/output-comparison.ts';
import { encodeModel, writeModelFile } from '../onnx/model-io.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { float32Tensor, openSession, tensorAsFloat32, type OrtSession } from '../onnx/ort-session.ts';
import { quantize } from '../quantize/quantizer.ts';
import { DistillError } from './distill-error.ts';
import {
  seedFigures,
  summariseSeeds,
  type DistillReport,
  type ModelFigures,
  type SeedFigures,
  type SeedRun,
  type SeedSummary,
  type TrainedFigures,
} from './distill-report.ts';
import { trainStudent, type LabelledSamples, type TrainingProgress, type TrainingSettings } from './distill-trainer.ts';
import { exportStudent, verifyExport, withProbabilityHead } from './student-export.ts';
import { StudentModel } from './student-model.ts';
import { formatStudentSpec, parseStudentSpec, type StudentSpec } from './student-spec.ts';
import { openTeacher, teacherLogits, type Teacher } from './teacher-model.ts';
import { useWasmBackend } from './wasm-backend.ts';

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

export interface DistillResult {
  model: ModelProto;
  bytes: Uint8Array;
  report: DistillReport;
}

function invalid(message: string): DistillError {
  return new DistillError('CALIPER_DISTILL_INVALID_OPTIONS', message);
}

function checkNumber(name: string, value: number, ok: (v: number) => boolean, expected: string): void {
  if (typeof value !== 'number' || Number.isNaN(value) || !ok(value))
    throw invalid(`${name} must be ${expected}, got ${String(value)}`);
}

async function resolveData(source: DataSource, purpose: string, limit: number | undefined): Promise<Dataset> {
  try {
    let data = isFeedSet(source)
      ? datasetFromFeedSet(source, purpose)
      : typeof source === 'object' && 'features' in source
        ? source
        : await loadDataset(source);
    if (limit !== undefined && limit < data.count) data = sliceDataset(data, 0, limit);
    return data;
  } catch (error) {
    // Readers report unreadable files with DatasetError, fs errors or plain Errors; all name the problem.
    if (error instanceof DatasetError || error instanceof Error) {
      throw new DistillError('CALIPER_DISTILL_DATA', `${purpose} data: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

function checkLabels(data: Dataset, classes: number, purpose: string): void {
  if (!data.labels) return;
  let max = 0;
  let min = 0;
  for (const l of data.labels) {
    if (l > max) max = l;
    if (l < min) min = l;
  }
  if (min < 0 || max >= classes) {
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `${purpose} data ${data.source} has labels from ${min} to ${max}, but the teacher's output has ${classes} classes (expected labels 0 to ${classes - 1})`,
    );
  }
}

function parameterCount(model: ModelProto): number {
  return (model.graph?.initializer ?? []).reduce((n, t) => n + (t.dims ?? []).reduce((a, b) => a * Number(b), 1), 0);
}

/** Accuracy and agreement with the teacher's classes of a model run in ONNX Runtime. */
async function scoreModel(
  session: OrtSession,
  data: Dataset,
  sampleShape: number[],
  teacherClasses: Int32Array | undefined,
): Promise<{ accuracy?: number; agreement: number; classes: Int32Array }> {
  const size = sampleSize(data);
  const classes = new Int32Array(data.count);
  const [input, output] = [session.inputNames[0]!, session.outputNames[0]!];
  let decision: ClassDecision | undefined;
  for (let start = 0; start < data.count; start += 1024) {
    const rows = Math.min(1024, data.count - start);
    const out = await session.run({
      [input]: float32Tensor(data.features.subarray(start * size, (start + rows) * size), [rows, ...sampleShape]),
    });
    const values = tensorAsFloat32(out[output]!);
    // [N, C] logits by argmax; a binary model's [N, 1] probability against 0.5.
    decision ??= classDecision(values, rows);
    classes.set(decision.classes(values, rows), start);
  }
  let correct = 0;
  let agree = 0;
  for (let i = 0; i < data.count; i++) {
    if (data.labels && classes[i] === data.labels[i]) correct++;
    if (!teacherClasses || classes[i] === teacherClasses[i]) agree++;
  }
  return { ...(data.labels ? { accuracy: correct / data.count } : {}), agreement: agree / data.count, classes };
}

interface TrainedStudent {
  student: StudentModel;
  model: ModelProto;
  bytes: Uint8Array;
  figures: Omit<TrainedFigures, 'accuracy' | 'agreement'>;
}

async function trainAndExport(
  spec: StudentSpec,
  teacher: Teacher,
  train: LabelledSamples,
  evalSamples: LabelledSamples | undefined,
  settings: TrainingSettings,
  progress: TrainingProgress | undefined,
): Promise<TrainedStudent> {
  const student = StudentModel.create(spec, teacher.sampleShape, teacher.classes, settings.seed);
  try {
    const outcome = await trainStudent(student, train, evalSamples, settings, progress);
    const logitsModel = exportStudent(student, teacher.input.name);
    const check = evalSamples ?? train;
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

/**
 * Distils a teacher ONNX classifier into a student: validates everything first (data vs teacher input,
 * logits-like teacher output, labels when alpha < 1, the student spec), caches the teacher's logits,
 * trains with tfjs (wasm), exports to ONNX, checks the export against the trained model, then measures
 * teacher vs student with ONNX Runtime: accuracy, agreement, size and latency.
 */
export async function distill(options: DistillOptions): Promise<DistillResult> {
  const started = performance.now();
  const settings: TrainingSettings = {
    temperature: options.temperature ?? 1,
    alpha: options.alpha ?? 0.5,
    epochs: options.epochs ?? 10,
    batchSize: options.batchSize ?? 128,
    learningRate: options.learningRate ?? 1e-3,
    patience: options.patience ?? 3,
    qat: options.qat ?? false,
    seed: options.seed ?? 1,
  };
  checkNumber('temperature', settings.temperature, (v) => v > 0 && Number.isFinite(v), 'a number > 0');
  checkNumber('alpha', settings.alpha, (v) => v >= 0 && v <= 1, 'a number from 0 to 1');
  checkNumber('epochs', settings.epochs, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  checkNumber('batch size', settings.batchSize, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  checkNumber('learning rate', settings.learningRate, (v) => v > 0 && Number.isFinite(v), 'a number > 0');
  checkNumber('patience', settings.patience, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  const seedCount = options.seeds ?? 1;
  checkNumber('seeds', seedCount, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  if (options.validationSplit !== undefined)
    checkNumber(
      'validation split',
      options.validationSplit,
      (v) => v > 0 && (v < 1 || Number.isInteger(v)),
      'a fraction in (0, 1) or a whole number of samples',
    );
  const spec = typeof options.student === 'string' ? parseStudentSpec(options.student) : options.student;
  const warnings: string[] = [];

  const teacherBytes = typeof options.teacher === 'string' ? readTeacher(options.teacher) : options.teacher;
  const { train, validation } = await splitTraining(options);
  if (settings.alpha < 1 && !train.labels) {
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `training data ${train.source} has no labels, but alpha ${settings.alpha} < 1 weighs a hard-label loss; give labelled data or --alpha 1 (teacher only)`,
    );
  }
  if (options.baseline && !train.labels)
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `--baseline trains on hard labels, but training data ${train.source} has no labels`,
    );
  const evalData =
    options.eval !== undefined ? await resolveData(options.eval, 'eval', options.evalSamples) : undefined;
  if (evalData && sampleSize(evalData) !== sampleSize(train)) {
    throw new DistillError(
      'CALIPER_DISTILL_DATA',
      `eval data ${evalData.source} has ${sampleSize(evalData)} values per sample, training data ${train.source} has ${sampleSize(train)}`,
    );
  }
  const stopOn = validation ?? evalData;
  if (evalData && !validation)
    warnings.push(
      `early stopping selects epochs on the eval data ${evalData.source}, so its accuracy is slightly optimistic; --validation-split holds out training samples instead`,
    );
  await useWasmBackend();
  const teacher = await openTeacher(teacherBytes, train, options.teacherThreads ?? 2);
  const sessions: OrtSession[] = [teacher.session];
  const students: StudentModel[] = [];
  try {
    warnings.push(...teacher.warnings);
    checkLabels(train, teacher.classes, 'training');
    if (evalData) checkLabels(evalData, teacher.classes, 'eval');
    // Builds (and drops) the student once now so that a bad architecture fails before the teacher runs.
    StudentModel.create(spec, teacher.sampleShape, teacher.classes, settings.seed).dispose();
    if (options.output) mkdirSync(dirname(options.output), { recursive: true });

    const logitsTotal = train.count + (stopOn?.count ?? 0);
    options.progress?.onPhase?.('teacher-logits', logitsTotal);
    const logitsStart = performance.now();
    const trainSamples = await withTeacherLogits(teacher, train, (done) =>
      options.progress?.onTeacherLogits?.(done, logitsTotal),
    );
    const evalSamples = stopOn
      ? await withTeacherLogits(teacher, stopOn, (done) =>
          options.progress?.onTeacherLogits?.(train.count + done, logitsTotal),
        )
      : undefined;
    const teacherLogitsSeconds = (performance.now() - logitsStart) / 1000;

    options.progress?.onPhase?.('distill', settings.epochs);
    const distilled = await trainAndExport(spec, teacher, trainSamples, evalSamples, settings, options.progress);
    students.push(distilled.student);
    let baseline: TrainedStudent | undefined;
    if (options.baseline) {
      options.progress?.onPhase?.('baseline', settings.epochs);
      baseline = await trainAndExport(
        spec,
        teacher,
        trainSamples,
        evalSamples,
        { ...settings, alpha: 0 },
        options.progress,
      );
      students.push(baseline.student);
    }

    options.progress?.onPhase?.('evaluate');
    const scored = evalData ?? train;
    if (!evalData)
      warnings.push(
        `no --eval data: accuracy is measured on the training data${validation ? '' : ' and there is no early stopping'}`,
      );
    const teacherTimed = await openSession(teacherBytes, { intraOpNumThreads: 1 });
    sessions.push(teacherTimed);
    const studentSession = await openSession(distilled.bytes, { intraOpNumThreads: 1 });
    sessions.push(studentSession);
    const teacherScore = await scoreModel(teacherTimed, scored, teacher.sampleShape, undefined);
    const figuresOf = async (session: OrtSession) => {
      const { accuracy, agreement } = await scoreModel(session, scored, teacher.sampleShape, teacherScore.classes);
      return { ...(accuracy !== undefined ? { accuracy } : {}), agreement };
    };
    const teacherFigures: ModelFigures = {
      ...(teacherScore.accuracy !== undefined ? { accuracy: teacherScore.accuracy } : {}),
      agreement: 1,
      parameters: parameterCount(teacher.model),
      sizeBytes: teacherBytes.length,
    };
    const distilledFigures: TrainedFigures = { ...(await figuresOf(studentSession)), ...distilled.figures };
    let baselineFigures: TrainedFigures | undefined;
    if (baseline) {
      const session = await openSession(baseline.bytes, { intraOpNumThreads: 1 });
      sessions.push(session);
      baselineFigures = { ...(await figuresOf(session)), ...baseline.figures };
    }
    let int8: ModelFigures | undefined;
    if (settings.qat) {
      const quantized = await quantize(distilled.bytes, { mode: 'dynamic', perChannel: true, latencyBatchSizes: [] });
      const session = await openSession(quantized.bytes, { intraOpNumThreads: 1 });
      sessions.push(session);
      int8 = {
        ...(await figuresOf(session)),
        parameters: distilled.figures.parameters,
        sizeBytes: quantized.bytes.length,
      };
    }
    let seedSummary: SeedSummary | undefined;
    if (seedCount > 1) {
      const runs: SeedRun[] = [
        {
          seed: settings.seed,
          distilled: seedFigures(distilledFigures),
          ...(baselineFigures ? { baseline: seedFigures(baselineFigures) } : {}),
        },
      ];
      for (let seed = settings.seed + 1; seed < settings.seed + seedCount; seed++) {
        const trainOne = async (alpha: number, phase: string): Promise<SeedFigures> => {
          options.progress?.onPhase?.(`${phase} seed ${seed}`, settings.epochs);
          const trained = await trainAndExport(
            spec,
            teacher,
            trainSamples,
            evalSamples,
            { ...settings, alpha, seed },
            options.progress,
          );
          trained.student.dispose();
          const session = await openSession(trained.bytes, { intraOpNumThreads: 1 });
          try {
            return seedFigures({ ...(await figuresOf(session)), ...trained.figures });
          } finally {
            await session.release();
          }
        };
        const distilledRun = await trainOne(settings.alpha, 'distill');
        runs.push({ seed, distilled: distilledRun, ...(baseline ? { baseline: await trainOne(0, 'baseline') } : {}) });
      }
      seedSummary = summariseSeeds(runs, teacherFigures.accuracy);
      options.progress?.onPhase?.('evaluate');
    }
    const latency: LatencyComparison[] = [];
    for (const batchSize of options.latencyBatchSizes ?? [1, 64]) {
      const rows = Math.min(batchSize, scored.count);
      if (rows < batchSize) {
        warnings.push(`latency at batch ${batchSize} skipped: only ${scored.count} samples`);
        continue;
      }
      const feeds = {
        [teacher.input.name]: float32Tensor(scored.features.slice(0, rows * sampleSize(scored)), [
          rows,
          ...teacher.sampleShape,
        ]),
      };
      latency.push(await compareLatency(teacherTimed, studentSession, feeds, batchSize));
    }
    if (options.output) writeModelFile(options.output, distilled.model);
    const report: DistillReport = {
      student: formatStudentSpec(spec),
      settings,
      data: {
        train: train.source,
        trainSamples: train.count,
        evaluatedOn: scored.source,
        evalSamples: scored.count,
        classes: teacher.classes,
        earlyStopping: validation
          ? `validation: last ${validation.count} training samples`
          : evalData
            ? 'eval data'
            : 'none',
      },
      teacherLogitsSeconds,
      teacher: teacherFigures,
      distilled: distilledFigures,
      ...(baselineFigures ? { baseline: baselineFigures } : {}),
      ...(int8 ? { int8 } : {}),
      ...(teacherFigures.accuracy && distilledFigures.accuracy !== undefined
        ? { accuracyRatio: distilledFigures.accuracy / teacherFigures.accuracy }
        : {}),
      ...(seedSummary ? { seeds: seedSummary } : {}),
      latency,
      totalSeconds: (performance.now() - started) / 1000,
      warnings,
    };
    return { model: distilled.model, bytes: distilled.bytes, report };
  } finally {
    for (const s of students) s.dispose();
    for (const s of sessions) await s.release();
  }
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

/** The training data, less the validation tail when `validationSplit` is given, cut to `trainSamples`. */
async function splitTraining(options: DistillOptions): Promise<{ train: Dataset; validation?: Dataset }> {
  if (options.validationSplit === undefined)
    return { train: await resolveData(options.train, 'training', options.trainSamples) };
  const all = await resolveData(options.train, 'training', undefined);
  const held = options.validationSplit < 1 ? Math.round(all.count * options.validationSplit) : options.validationSplit;
  if (held < 1 || held >= all.count) {
    throw invalid(
      `validation split ${options.validationSplit} holds out ${held} of the ${all.count} training samples; it must leave at least one on each side`,
    );
  }
  const rest = all.count - held;
  const validation = { ...sliceDataset(all, rest, held), source: `${all.source} [last ${held}]` };
  const train = sliceDataset(all, 0, Math.min(rest, options.trainSamples ?? rest));
  return { train, validation };
}

function readTeacher(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new DistillError(
      'CALIPER_DISTILL_TEACHER',
      `cannot read teacher model ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
      { cause: error },
    );
  }
}
