import { tensorAsFloat32, type OrtFeeds, type OrtSession, type OrtTensor } from '../onnx/ort-session.ts';

export interface OutputDifference {
  /** Samples (rows of the first input) compared. */
  samples: number;
  maxAbs: number;
  meanAbs: number;
  /** Output values that are NaN or infinite after conversion where they were finite before (a broken conversion). */
  nonFinite?: number;
}

export interface AccuracyComparison {
  samples: number;
  /** Top-1 accuracy of each model on the labels, in [0, 1]. */
  before: number;
  after: number;
  /** Share of samples where both models predict the same class. */
  agreement: number;
  /** How a class is read from the first output: argmax over its columns, or one column against a threshold. */
  decision?: string;
}

export interface RegressionErrors {
  mae: number;
  rmse: number;
}

/** Error of each model's first output against numeric targets. */
export interface RegressionComparison {
  samples: number;
  before: RegressionErrors;
  after: RegressionErrors;
}

/** How outputs are scored: classes (accuracy) or numbers (MAE/RMSE); `auto` decides from the labels and the output. */
export type EvaluationTask = 'auto' | 'classification' | 'regression';

export interface ScoredBatch {
  feeds: OrtFeeds;
  rows: number;
  labels?: Int32Array;
  targets?: Float64Array;
}

/** Top-1 class per row of a [N, C] (or [N, ..., C]) float output. */
export function argmaxRows(values: Float32Array, rows: number): Int32Array {
  const width = values.length / rows;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (values[r * width + c]! > values[r * width + best]!) best = c;
    out[r] = best;
  }
  return out;
}

/** How rows of an output become classes: argmax over C > 1 columns, or a threshold on one column (0.5 for probabilities, 0 for logits). */
export interface ClassDecision {
  describe: string;
  classes(values: Float32Array, rows: number): Int32Array;
}

export function classDecision(sample: Float32Array, rows: number): ClassDecision {
  if (sample.length / rows > 1) return { describe: 'argmax', classes: argmaxRows };
  const probability = sample.every((v) => v >= 0 && v <= 1);
  const threshold = probability ? 0.5 : 0;
  return {
    describe: `${probability ? 'probability' : 'logit'} > ${threshold}`,
    classes: (values, n) => Int32Array.from({ length: n }, (_, r) => (values[r]! > threshold ? 1 : 0)),
  };
}

/** The task `auto` means for this data and output: classes when labels are class indices the output can express, else regression. */
export function resolveTask(
  task: EvaluationTask,
  first: { labels?: Int32Array; targets?: Float64Array } | undefined,
  output: OrtTensor,
  rows: number,
): 'classification' | 'regression' | undefined {
  if (!first?.labels && !first?.targets) return undefined;
  if (task !== 'auto') return task === 'classification' && !first.labels ? 'regression' : task;
  if (!first.labels) return 'regression';
  const width = output.dims.slice(1).reduce((a, b) => a * b, 1) || output.size / rows;
  if (width > 1) return 'classification';
  return first.labels.every((l) => l === 0 || l === 1) ? 'classification' : 'regression';
}

/**
 * Runs both models on each batch and accumulates the absolute difference of their float outputs and,
 * when the batches carry labels or targets, accuracy and agreement (classification) or MAE/RMSE
 * (regression) of the first output.
 */
export async function compareOutputs(
  before: OrtSession,
  after: OrtSession,
  batches: ScoredBatch[],
  task: EvaluationTask = 'auto',
): Promise<{ difference: OutputDifference; accuracy?: AccuracyComparison; regression?: RegressionComparison }> {
  let maxAbs = 0;
  let nonFinite = 0;
  let sum = 0;
  let count = 0;
  let samples = 0;
  const tally = { labelled: 0, before: 0, after: 0, agree: 0 };
  const errors = { n: 0, absBefore: 0, absAfter: 0, sqBefore: 0, sqAfter: 0 };
  let resolved: 'classification' | 'regression' | undefined;
  let decision: ClassDecision | undefined;
  const first = before.outputNames[0]!;
  for (const batch of batches) {
    const a = await before.run(batch.feeds);
    const b = await after.run(batch.feeds);
    samples += batch.rows;
    for (const name of before.outputNames) {
      const x = a[name]!;
      const y = b[name];
      if (!y) throw new Error(`the converted model has no output ${name}`);
      if (x.dims.join() !== y.dims.join())
        throw new Error(`output ${name} has shape [${y.dims}] after conversion, [${x.dims}] before`);
      if (!['float32', 'float16', 'float64'].includes(x.type)) continue;
      const xv = tensorAsFloat32(x);
      const yv = tensorAsFloat32(y);
      for (let i = 0; i < xv.length; i++) {
        if (!Number.isFinite(yv[i]!) && Number.isFinite(xv[i]!)) nonFinite++;
        const d = Math.abs(xv[i]! - yv[i]!);
        if (Number.isNaN(d) && !(Number.isNaN(xv[i]!) && Number.isNaN(yv[i]!))) maxAbs = Infinity;
        else if (!Number.isNaN(d)) {
          if (d > maxAbs) maxAbs = d;
          sum += d;
        }
      }
      count += xv.length;
    }
    resolved ??= resolveTask(task, batch, a[first]!, batch.rows);
    if (resolved === 'classification' && batch.labels) {
      const xa = tensorAsFloat32(a[first]!);
      decision ??= classDecision(xa, batch.rows);
      const pa = decision.classes(xa, batch.rows);
      const pb = decision.classes(tensorAsFloat32(b[first]!), batch.rows);
      for (let i = 0; i < batch.rows; i++) {
        tally.labelled++;
        if (pa[i] === batch.labels[i]) tally.before++;
        if (pb[i] === batch.labels[i]) tally.after++;
        if (pa[i] === pb[i]) tally.agree++;
      }
    } else if (resolved === 'regression' && batch.targets) {
      const xa = tensorAsFloat32(a[first]!);
      const xb = tensorAsFloat32(b[first]!);
      const width = xa.length / batch.rows;
      for (let i = 0; i < batch.rows; i++) {
        const t = batch.targets[i]!;
        const da = xa[i * width]! - t;
        const db = xb[i * width]! - t;
        errors.n++;
        errors.absBefore += Math.abs(da);
        errors.absAfter += Math.abs(db);
        errors.sqBefore += da * da;
        errors.sqAfter += db * db;
      }
    }
  }
  const difference = { samples, maxAbs, meanAbs: count ? sum / count : 0, nonFinite };
  if (tally.labelled) {
    return {
      difference,
      accuracy: {
        samples: tally.labelled,
        before: tally.before / tally.labelled,
        after: tally.after / tally.labelled,
        agreement: tally.agree / tally.labelled,
        decision: decision!.describe,
      },
    };
  }
  if (errors.n) {
    return {
      difference,
      regression: {
        samples: errors.n,
        before: { mae: errors.absBefore / errors.n, rmse: Math.sqrt(errors.sqBefore / errors.n) },
        after: { mae: errors.absAfter / errors.n, rmse: Math.sqrt(errors.sqAfter / errors.n) },
      },
    };
  }
  return { difference };
}
