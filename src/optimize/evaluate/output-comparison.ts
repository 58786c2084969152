import { tensorAsFloat32, type OrtFeeds, type OrtSession } from '../onnx/ort-session.ts';

export interface OutputDifference {
  /** Samples (rows of the first input) compared. */
  samples: number;
  maxAbs: number;
  meanAbs: number;
}

export interface AccuracyComparison {
  samples: number;
  /** Top-1 accuracy of each model on the labels, in [0, 1]. */
  before: number;
  after: number;
  /** Share of samples where both models predict the same class. */
  agreement: number;
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

/**
 * Runs both models on each batch and accumulates the absolute difference of their float outputs and,
 * when labels are given, top-1 accuracy and agreement computed from the first output.
 */
export async function compareOutputs(before: OrtSession, after: OrtSession, batches: { feeds: OrtFeeds; rows: number; labels?: Int32Array }[]): Promise<{ difference: OutputDifference; accuracy?: AccuracyComparison }> {
  let maxAbs = 0;
  let sum = 0;
  let count = 0;
  let samples = 0;
  const tally = { labelled: 0, before: 0, after: 0, agree: 0 };
  for (const batch of batches) {
    const a = await before.run(batch.feeds);
    const b = await after.run(batch.feeds);
    samples += batch.rows;
    for (const name of before.outputNames) {
      const x = a[name]!;
      const y = b[name];
      if (!y) throw new Error(`the converted model has no output ${name}`);
      if (x.dims.join() !== y.dims.join()) throw new Error(`output ${name} has shape [${y.dims}] after conversion, [${x.dims}] before`);
      if (!['float32', 'float16', 'float64'].includes(x.type)) continue;
      const xv = tensorAsFloat32(x);
      const yv = tensorAsFloat32(y);
      for (let i = 0; i < xv.length; i++) {
        const d = Math.abs(xv[i]! - yv[i]!);
        if (Number.isNaN(d) && !(Number.isNaN(xv[i]!) && Number.isNaN(yv[i]!))) maxAbs = Infinity;
        else if (!Number.isNaN(d)) {
          if (d > maxAbs) maxAbs = d;
          sum += d;
        }
      }
      count += xv.length;
    }
    if (batch.labels) {
      const first = before.outputNames[0]!;
      const pa = argmaxRows(tensorAsFloat32(a[first]!), batch.rows);
      const pb = argmaxRows(tensorAsFloat32(b[first]!), batch.rows);
      for (let i = 0; i < batch.rows; i++) {
        tally.labelled++;
        if (pa[i] === batch.labels[i]) tally.before++;
        if (pb[i] === batch.labels[i]) tally.after++;
        if (pa[i] === pb[i]) tally.agree++;
      }
    }
  }
  const difference = { samples, maxAbs, meanAbs: count ? sum / count : 0 };
  if (!tally.labelled) return { difference };
  return {
    difference,
    accuracy: { samples: tally.labelled, before: tally.before / tally.labelled, after: tally.after / tally.labelled, agreement: tally.agree / tally.labelled },
  };
}
