import type { LatencyComparison } from '../evaluate/latency.ts';
import { speedWords } from '../evaluate/optimization-guard.ts';
import type { EpochResult } from './distill-trainer.ts';

/** One model's row in the report; accuracy and agreement are measured with ONNX Runtime on the eval data. */
export interface ModelFigures {
  /** Top-1 accuracy on the labels (absent when the evaluation data has none). */
  accuracy?: number;
  /** Share of samples where the model picks the teacher's class. */
  agreement: number;
  parameters: number;
  sizeBytes: number;
}

export interface TrainedFigures extends ModelFigures {
  epochs: EpochResult[];
  bestEpoch: number;
  stoppedEarly: boolean;
  trainSeconds: number;
  /** Largest |ONNX Runtime − tfjs| logit difference found by the export check. */
  exportMaxAbsDiff: number;
}

/** What `caliper distill` reports: teacher vs student (and the hard-label baseline), accuracy, size and latency. */
export interface DistillReport {
  student: string;
  settings: {
    temperature: number;
    alpha: number;
    epochs: number;
    batchSize: number;
    learningRate: number;
    patience: number;
    qat: boolean;
    seed: number;
  };
  /** `earlyStopping` names the data that selected the epoch: a validation tail of the training data, the eval data, or none. */
  data: {
    train: string;
    trainSamples: number;
    evaluatedOn: string;
    evalSamples: number;
    classes: number;
    earlyStopping: string;
  };
  teacherLogitsSeconds: number;
  teacher: ModelFigures;
  distilled: TrainedFigures;
  /** The same student trained on hard labels only (alpha 0), with --baseline. */
  baseline?: TrainedFigures;
  /** The distilled student after `caliper quantize --mode dynamic --per-channel`, with --qat. */
  int8?: ModelFigures;
  /** Student accuracy / teacher accuracy. */
  accuracyRatio?: number;
  /** Teacher (before) vs student (after), 1 intra-op thread, interleaved in the same run. */
  latency: LatencyComparison[];
  totalSeconds: number;
  warnings: string[];
}

const pct = (x: number | undefined) => (x === undefined ? '   -   ' : `${(x * 100).toFixed(2)}%`);
const size = (bytes: number) =>
  bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "keeps 96.9% of the teacher's accuracy", or, for a student that beats its teacher, by how many points. */
function accuracyWords(report: DistillReport): string {
  const ratio = report.accuracyRatio!;
  if (ratio <= 1) return `student keeps ${(ratio * 100).toFixed(1)}% of the teacher's accuracy`;
  const points = ((report.distilled.accuracy ?? 0) - (report.teacher.accuracy ?? 0)) * 100;
  return `student is ${points.toFixed(2)} pt more accurate than the teacher (${pct(report.distilled.accuracy)} against ${pct(report.teacher.accuracy)})`;
}

/** "12.3× fewer parameters" or "1.7× more parameters". */
function parameterWords(teacher: number, student: number): string {
  return student <= teacher
    ? `${(teacher / student).toFixed(1)}× fewer parameters`
    : `${(student / teacher).toFixed(1)}× more parameters`;
}

export function formatDistillReport(report: DistillReport): string {
  const rows: [string, ModelFigures][] = [
    ['teacher', report.teacher],
    [`student ${report.student}`, report.distilled],
  ];
  if (report.baseline) rows.push(['baseline (hard labels only)', report.baseline]);
  if (report.int8) rows.push(['student INT8 (dynamic, per-channel)', report.int8]);
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = [
    `evaluated on ${report.data.evaluatedOn} (${report.data.evalSamples} samples); trained on ${report.data.train} (${report.data.trainSamples} samples, ${report.data.classes} classes); early stopping on ${report.data.earlyStopping}`,
    `settings: T=${report.settings.temperature}, alpha=${report.settings.alpha}, batch ${report.settings.batchSize}, lr ${report.settings.learningRate}, ${report.settings.qat ? 'QAT, ' : ''}seed ${report.settings.seed}`,
    '',
    `${'model'.padEnd(width)}  accuracy  agreement  parameters        size`,
    ...rows.map(
      ([name, r]) =>
        `${name.padEnd(width)}  ${pct(r.accuracy).padStart(8)}  ${pct(r.agreement).padStart(9)}  ${String(r.parameters).padStart(10)}  ${size(r.sizeBytes).padStart(10)}`,
    ),
    '',
  ];
  if (report.accuracyRatio !== undefined)
    lines.push(
      `${accuracyWords(report)} with ${parameterWords(report.teacher.parameters, report.distilled.parameters)}`,
    );
  for (const l of report.latency) {
    lines.push(
      `latency b=${String(l.batchSize).padEnd(3)} teacher ${l.beforeMs.toFixed(3)} ms → student ${l.afterMs.toFixed(3)} ms  (student ${speedWords(l.beforeMs, l.afterMs)}, 1 intra-op thread, same run)`,
    );
  }
  const d = report.distilled;
  lines.push(
    `training: ${plural(d.epochs.length, 'epoch')} in ${d.trainSeconds.toFixed(1)} s, best epoch ${d.bestEpoch}${d.stoppedEarly ? ' (stopped early)' : ''}; teacher logits ${report.teacherLogitsSeconds.toFixed(1)} s; export check max |diff| ${d.exportMaxAbsDiff.toExponential(2)}; total ${report.totalSeconds.toFixed(1)} s`,
  );
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/** The report's figures as flat registry metrics. */
export function distillMetrics(report: DistillReport): Record<string, number> {
  const metrics: Record<string, number> = {
    teacher_parameters: report.teacher.parameters,
    student_parameters: report.distilled.parameters,
    size_before_bytes: report.teacher.sizeBytes,
    size_after_bytes: report.distilled.sizeBytes,
    agreement: report.distilled.agreement,
  };
  if (report.teacher.accuracy !== undefined) metrics.accuracy_before = report.teacher.accuracy;
  if (report.distilled.accuracy !== undefined) metrics.accuracy_after = report.distilled.accuracy;
  for (const l of report.latency) {
    metrics[`latency_b${l.batchSize}_before_ms`] = l.beforeMs;
    metrics[`latency_b${l.batchSize}_after_ms`] = l.afterMs;
    metrics[`speedup_b${l.batchSize}`] = l.speedup;
  }
  return metrics;
}
