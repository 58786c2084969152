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

/** One seed's student (or baseline): what the seed summary keeps of its TrainedFigures. */
export interface SeedFigures {
  accuracy?: number;
  agreement: number;
  bestEpoch: number;
  epochs: number;
  trainSeconds: number;
}

export interface SeedRun {
  seed: number;
  distilled: SeedFigures;
  baseline?: SeedFigures;
}

/** Mean, sample standard deviation (n − 1; 0 for one value), least and greatest of a figure over the seeds. */
export interface MeanSd {
  mean: number;
  sd: number;
  min: number;
  max: number;
}

/** `--seeds N`: every seed's student (and baseline), and mean ± sd of accuracy, of the paired difference and of the share of the teacher's accuracy. */
export interface SeedSummary {
  seeds: number[];
  runs: SeedRun[];
  distilled?: MeanSd;
  baseline?: MeanSd;
  /** Distilled − baseline accuracy, paired by seed, in points. */
  differencePt?: MeanSd;
  /** Seeds where the distilled student is more accurate than its baseline. */
  ahead?: number;
  /** Distilled accuracy / teacher accuracy. */
  accuracyRatio?: MeanSd;
}

export function meanSd(values: readonly number[]): MeanSd {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance =
    values.length > 1 ? values.reduce((a, v) => a + (v - mean) * (v - mean), 0) / (values.length - 1) : 0;
  return { mean, sd: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values) };
}

export function seedFigures(f: TrainedFigures): SeedFigures {
  return {
    ...(f.accuracy !== undefined ? { accuracy: f.accuracy } : {}),
    agreement: f.agreement,
    bestEpoch: f.bestEpoch,
    epochs: f.epochs.length,
    trainSeconds: f.trainSeconds,
  };
}

/** Mean ± sd over the seeds' runs; accuracies only where every run has one (labelled eval data). */
export function summariseSeeds(runs: SeedRun[], teacherAccuracy: number | undefined): SeedSummary {
  const distilled = runs.map((r) => r.distilled.accuracy);
  const baseline = runs.map((r) => r.baseline?.accuracy);
  const known = (xs: (number | undefined)[]): xs is number[] => xs.every((x) => x !== undefined);
  const summary: SeedSummary = { seeds: runs.map((r) => r.seed), runs };
  if (known(distilled)) {
    summary.distilled = meanSd(distilled);
    if (teacherAccuracy) summary.accuracyRatio = meanSd(distilled.map((a) => a / teacherAccuracy));
    if (known(baseline)) {
      summary.baseline = meanSd(baseline);
      const differences = distilled.map((a, i) => (a - baseline[i]!) * 100);
      summary.differencePt = meanSd(differences);
      summary.ahead = differences.filter((d) => d > 0).length;
    }
  }
  return summary;
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
    /** Translation augmentation in pixels (0 or absent: none). */
    augmentShift?: number;
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
  /** With more than one seed: every seed's figures and mean ± sd over them. */
  seeds?: SeedSummary;
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
    `settings: T=${report.settings.temperature}, alpha=${report.settings.alpha}, batch ${report.settings.batchSize}, lr ${report.settings.learningRate}, ${report.settings.qat ? 'QAT, ' : ''}${report.settings.augmentShift ? `shifts ≤ ${report.settings.augmentShift} px, ` : ''}seed ${report.settings.seed}`,
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
  const seeds = report.seeds;
  if (seeds?.distilled) {
    const pm = (m: MeanSd, scale = 100, digits = 2) =>
      `${(m.mean * scale).toFixed(digits)} ± ${(m.sd * scale).toFixed(digits)}`;
    const parts = [`student ${pm(seeds.distilled)}%`];
    if (seeds.baseline && seeds.differencePt)
      parts.push(
        `baseline ${pm(seeds.baseline)}%`,
        `distilled − baseline ${seeds.differencePt.mean >= 0 ? '+' : ''}${pm(seeds.differencePt, 1)} pt (ahead on ${seeds.ahead} of ${seeds.runs.length})`,
      );
    if (seeds.accuracyRatio) parts.push(`${pm(seeds.accuracyRatio, 100, 1)}% of the teacher's accuracy`);
    lines.push(
      `over ${plural(seeds.runs.length, 'seed')} (${seeds.seeds.join(', ')}; mean ± sd): ${parts.join(', ')}; the rows above and the written model are seed ${seeds.seeds[0]}'s`,
    );
  }
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
  if (report.seeds?.distilled) {
    metrics.seeds = report.seeds.runs.length;
    metrics.accuracy_after_mean = report.seeds.distilled.mean;
    metrics.accuracy_after_sd = report.seeds.distilled.sd;
  }
  for (const l of report.latency) {
    metrics[`latency_b${l.batchSize}_before_ms`] = l.beforeMs;
    metrics[`latency_b${l.batchSize}_after_ms`] = l.afterMs;
    metrics[`speedup_b${l.batchSize}`] = l.speedup;
  }
  return metrics;
}
