import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Dataset } from '../datasets/dataset.ts';
import type { LatencyComparison } from '../evaluate/latency.ts';
import { writeModelFile } from '../onnx/model-io.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { openSession, type OrtSession } from '../onnx/ort-session.ts';
import { checkLabels, loadDistillData, type DistillData } from './distill-data.ts';
import { DistillError } from './distill-error.ts';
import { defaultAugmentShift, distillSettings, type DistillOptions } from './distill-options.ts';
import { compareTeacherStudentLatency } from './distill-latency.ts';
import type { DistillReport, ModelFigures, SeedSummary, TrainedFigures } from './distill-report.ts';
import type { TrainingSettings } from './distill-trainer.ts';
import { runSeeds } from './seed-runs.ts';
import { int8Figures, StudentScorer } from './student-evaluation.ts';
import { StudentModel } from './student-model.ts';
import { imageGeometry } from './image-shift.ts';
import { formatStudentSpec, parseStudentSpec, type StudentSpec } from './student-spec.ts';
import { distillSamples, trainAndExport, type DistillSamples, type TrainedStudent } from './student-training.ts';
import { openTeacher, type Teacher } from './teacher-model.ts';
import { useWasmBackend } from './wasm-backend.ts';

export type { DataSource, DistillOptions, DistillProgress } from './distill-options.ts';

export interface DistillResult {
  model: ModelProto;
  bytes: Uint8Array;
  report: DistillReport;
}

/** The figures of one distillation, before they become a report. */
interface Evaluated {
  scored: Dataset;
  teacher: ModelFigures;
  distilled: TrainedFigures;
  baseline?: TrainedFigures;
  int8?: ModelFigures;
  seeds?: SeedSummary;
  latency: LatencyComparison[];
}

/**
 * Distils a teacher ONNX classifier into a student: validates everything first (data vs teacher input,
 * logits-like teacher output, labels when alpha < 1, the student spec), caches the teacher's logits,
 * trains with tfjs (wasm), exports to ONNX, checks the export against the trained model, then measures
 * teacher vs student with ONNX Runtime: accuracy, agreement, size and latency.
 */
export async function distill(options: DistillOptions): Promise<DistillResult> {
  const started = performance.now();
  const { settings, seedCount } = distillSettings(options);
  const spec = typeof options.student === 'string' ? parseStudentSpec(options.student) : options.student;
  const teacherBytes = typeof options.teacher === 'string' ? readTeacher(options.teacher) : options.teacher;
  const data = await loadDistillData(options, settings);
  const warnings = [...data.warnings];
  await useWasmBackend();
  const teacher = await openTeacher(teacherBytes, data.train, options.teacherThreads ?? 2);
  const sessions: OrtSession[] = [teacher.session];
  const students: StudentModel[] = [];
  try {
    warnings.push(...teacher.warnings);
    if (options.augmentShift === undefined)
      settings.augmentShift = defaultAugmentShift(data.train, teacher.sampleShape);
    checkAgainstTeacher(data, teacher, spec, settings);
    if (options.output) mkdirSync(dirname(options.output), { recursive: true });

    const samples = await distillSamples(teacher, data.train, data.stopOn, options.progress);
    options.progress?.onPhase?.('distill', settings.epochs);
    const distilled = await trainAndExport(spec, teacher, samples, settings, options.progress);
    students.push(distilled.student);
    let baseline: TrainedStudent | undefined;
    if (options.baseline) {
      options.progress?.onPhase?.('baseline', settings.epochs);
      baseline = await trainAndExport(spec, teacher, samples, { ...settings, alpha: 0 }, options.progress);
      students.push(baseline.student);
    }

    options.progress?.onPhase?.('evaluate');
    const scores = await scoreModels(teacher, teacherBytes, data, distilled, baseline, settings, warnings, (session) =>
      sessions.push(session),
    );
    const seeds =
      seedCount > 1
        ? await runSeeds({
            spec,
            teacher,
            samples,
            settings,
            seedCount,
            scorer: scores.scorer,
            first: scores,
            ...(options.progress ? { progress: options.progress } : {}),
          })
        : undefined;
    if (seeds) options.progress?.onPhase?.('evaluate');
    const latency = await compareTeacherStudentLatency(
      scores.sessions.teacher,
      scores.sessions.student,
      scores.scored,
      { name: teacher.input.name, sampleShape: teacher.sampleShape },
      options.latencyBatchSizes ?? [1, 64],
      warnings,
    );
    if (options.output) writeModelFile(options.output, distilled.model);
    const evaluated: Evaluated = { ...scores, ...(seeds ? { seeds } : {}), latency };
    const report = reportOf(spec, settings, data, teacher, samples, evaluated, started, warnings);
    return { model: distilled.model, bytes: distilled.bytes, report };
  } finally {
    for (const s of students) s.dispose();
    for (const s of sessions) await s.release();
  }
}

/** Labels within the teacher's classes; the student spec builds on the teacher's input (built once and dropped). */
function checkAgainstTeacher(data: DistillData, teacher: Teacher, spec: StudentSpec, settings: TrainingSettings): void {
  checkLabels(data.train, teacher.classes, 'training');
  if (data.evalData) checkLabels(data.evalData, teacher.classes, 'eval');
  if (settings.augmentShift > 0) imageGeometry(teacher.sampleShape, settings.augmentShift);
  // Builds (and drops) the student once now so that a bad architecture fails before the teacher runs.
  StudentModel.create(spec, teacher.sampleShape, teacher.classes, settings.seed).dispose();
}

/** The rows of the report, scored on one data set, and the sessions latency is timed with. */
interface Scores {
  scored: Dataset;
  scorer: StudentScorer;
  teacher: ModelFigures;
  distilled: TrainedFigures;
  baseline?: TrainedFigures;
  int8?: ModelFigures;
  sessions: { teacher: OrtSession; student: OrtSession };
}

/**
 * Scores teacher, student, baseline and (with QAT) the INT8 student on the eval data, or on the training data
 * without it (with a warning). The sessions it opens (1 intra-op thread) are handed to `keep`.
 */
async function scoreModels(
  teacher: Teacher,
  teacherBytes: Uint8Array,
  data: DistillData,
  distilled: TrainedStudent,
  baseline: TrainedStudent | undefined,
  settings: TrainingSettings,
  warnings: string[],
  keep: (session: OrtSession) => void,
): Promise<Scores> {
  const scored = data.evalData ?? data.train;
  if (!data.evalData)
    warnings.push(
      `no --eval data: accuracy is measured on the training data${data.validation ? '' : ' and there is no early stopping'}`,
    );
  const open = async (bytes: Uint8Array) => {
    const session = await openSession(bytes, { intraOpNumThreads: 1 });
    keep(session);
    return session;
  };
  const teacherSession = await open(teacherBytes);
  const studentSession = await open(distilled.bytes);
  const scorer = await StudentScorer.create(
    teacherSession,
    teacher.model,
    teacherBytes.length,
    scored,
    teacher.sampleShape,
  );
  const distilledFigures: TrainedFigures = { ...(await scorer.score(studentSession)), ...distilled.figures };
  const baselineFigures: TrainedFigures | undefined = baseline
    ? { ...(await scorer.score(await open(baseline.bytes))), ...baseline.figures }
    : undefined;
  const int8 = settings.qat
    ? await int8Figures(distilled.bytes, distilled.figures.parameters, scorer, keep)
    : undefined;
  return {
    scored,
    scorer,
    teacher: scorer.teacher,
    distilled: distilledFigures,
    ...(baselineFigures ? { baseline: baselineFigures } : {}),
    ...(int8 ? { int8 } : {}),
    sessions: { teacher: teacherSession, student: studentSession },
  };
}

function reportOf(
  spec: StudentSpec,
  settings: TrainingSettings,
  data: DistillData,
  teacher: Teacher,
  samples: DistillSamples,
  evaluated: Evaluated,
  started: number,
  warnings: string[],
): DistillReport {
  const { scored, teacher: teacherFigures, distilled } = evaluated;
  return {
    student: formatStudentSpec(spec),
    settings,
    data: {
      train: data.train.source,
      trainSamples: data.train.count,
      evaluatedOn: scored.source,
      evalSamples: scored.count,
      classes: teacher.classes,
      earlyStopping: data.validation
        ? `validation: last ${data.validation.count} training samples`
        : data.evalData
          ? 'eval data'
          : 'none',
    },
    teacherLogitsSeconds: samples.teacherLogitsSeconds,
    teacher: teacherFigures,
    distilled,
    ...(evaluated.baseline ? { baseline: evaluated.baseline } : {}),
    ...(evaluated.int8 ? { int8: evaluated.int8 } : {}),
    ...(teacherFigures.accuracy && distilled.accuracy !== undefined
      ? { accuracyRatio: distilled.accuracy / teacherFigures.accuracy }
      : {}),
    ...(evaluated.seeds ? { seeds: evaluated.seeds } : {}),
    latency: evaluated.latency,
    totalSeconds: (performance.now() - started) / 1000,
    warnings,
  };
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
