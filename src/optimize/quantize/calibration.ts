import { encodeModel } from '../onnx/model-io.ts';
import type { ModelProto } from '../onnx/onnx-types.ts';
import { openSession } from '../onnx/ort-session.ts';
import { DatasetError } from '../datasets/dataset-error.ts';
import { feedsOf, modelFixedBatch, type FeedSet } from '../datasets/feed-set.ts';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export interface CalibrationOptions {
  method: CalibrationMethod;
  /** For `percentile`: the share of values the range keeps (default 99.999). */
  percentile?: number;
  batchSize?: number;
}

export interface TensorRange {
  min: number;
  max: number;
}

const BINS = 2048;

/** Runs the calibration data through the model with the given tensors exposed as outputs, visiting each batch. */
async function forEachBatch(
  model: ModelProto,
  names: readonly string[],
  data: FeedSet,
  batchSize: number,
  visit: (name: string, values: Float32Array) => void,
): Promise<void> {
  const graph = model.graph ?? {};
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  const augmented: ModelProto = {
    ...model,
    graph: {
      ...graph,
      output: [
        ...(graph.output ?? []),
        ...names.filter((n) => !existing.has(n)).map((name) => ({ name, type: { tensorType: { elemType: 1 } } })),
      ],
    },
  };
  const fixed = modelFixedBatch(model);
  const size = fixed ?? batchSize;
  if (data.count < (fixed ?? 1)) {
    throw new DatasetError(
      `calibration data ${data.source} holds ${data.count} samples, fewer than the model's fixed batch size ${size}`,
    );
  }
  const session = await openSession(encodeModel(augmented), { optimization: 'disabled' });
  try {
    for (let start = 0; start + (fixed ?? 1) <= data.count; start += size) {
      const outputs = await session.run(feedsOf(data, start, size), [...names]);
      for (const name of names) visit(name, outputs[name]!.data as Float32Array);
    }
  } finally {
    await session.release();
  }
}

/**
 * Activation ranges over a calibration data set. `minmax` keeps the observed extremes; `percentile`
 * clips both tails of a 2048-bin histogram; `entropy` picks the clipping threshold whose 128-level
 * quantized distribution has the least KL divergence from the observed one (TensorRT's method).
 */
export async function calibrate(
  model: ModelProto,
  names: readonly string[],
  data: FeedSet,
  options: CalibrationOptions,
): Promise<Map<string, TensorRange>> {
  const batchSize = options.batchSize ?? 64;
  const ranges = new Map<string, TensorRange>(names.map((n) => [n, { min: Infinity, max: -Infinity }]));
  await forEachBatch(model, names, data, batchSize, (name, values) => {
    const r = ranges.get(name)!;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < r.min) r.min = v;
      if (v > r.max) r.max = v;
    }
  });
  for (const [name, r] of ranges)
    if (!Number.isFinite(r.min) || !Number.isFinite(r.max)) ranges.set(name, { min: 0, max: 0 });
  if (options.method === 'minmax') return ranges;

  const histograms = new Map<string, Float64Array>(names.map((n) => [n, new Float64Array(BINS)]));
  const absMax = new Map(
    names.map((n) => [n, Math.max(Math.abs(ranges.get(n)!.min), Math.abs(ranges.get(n)!.max)) || 1]),
  );
  const signed = options.method === 'percentile';
  await forEachBatch(model, names, data, batchSize, (name, values) => {
    const h = histograms.get(name)!;
    const m = absMax.get(name)!;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const position = signed ? (v + m) / (2 * m) : Math.abs(v) / m;
      h[Math.min(BINS - 1, Math.max(0, Math.floor(position * BINS)))]! += 1;
    }
  });
  const result = new Map<string, TensorRange>();
  for (const name of names) {
    const r = ranges.get(name)!;
    const h = histograms.get(name)!;
    const m = absMax.get(name)!;
    if (options.method === 'percentile') {
      const keep = (options.percentile ?? 99.999) / 100;
      const [lo, hi] = percentileRange(h, (1 - keep) / 2);
      result.set(name, {
        min: Math.max(r.min, -m + (lo * (2 * m)) / BINS),
        max: Math.min(r.max, -m + (hi * (2 * m)) / BINS),
      });
    } else {
      const threshold = entropyThreshold(h) * (m / BINS);
      result.set(name, { min: Math.max(r.min, -threshold), max: Math.min(r.max, threshold) });
    }
  }
  return result;
}

/** Bin edges [lo, hi) keeping all but `tail` of the mass on each side. */
function percentileRange(histogram: Float64Array, tail: number): [number, number] {
  const total = histogram.reduce((a, b) => a + b, 0);
  let acc = 0;
  let lo = 0;
  while (lo < BINS - 1 && acc + histogram[lo]! <= tail * total) acc += histogram[lo++]!;
  acc = 0;
  let hi = BINS;
  while (hi > lo + 1 && acc + histogram[hi - 1]! <= tail * total) acc += histogram[--hi]!;
  return [lo, hi];
}

/** The number of |x| histogram bins to keep that minimises KL(P‖Q) with Q quantized to 128 levels. */
export function entropyThreshold(histogram: Float64Array, levels = 128): number {
  let best = histogram.length;
  let bestDivergence = Infinity;
  for (let keep = levels; keep <= histogram.length; keep += 16) {
    const p = Array.from(histogram.subarray(0, keep));
    let outliers = 0;
    for (let i = keep; i < histogram.length; i++) outliers += histogram[i]!;
    p[keep - 1]! += outliers;
    const q = new Array<number>(keep).fill(0);
    const width = keep / levels;
    for (let l = 0; l < levels; l++) {
      const from = Math.floor(l * width);
      const to = l === levels - 1 ? keep : Math.floor((l + 1) * width);
      let sum = 0;
      let nonZero = 0;
      for (let i = from; i < to; i++) {
        sum += histogram[i]!;
        if (histogram[i]! > 0) nonZero++;
      }
      for (let i = from; i < to; i++) if (histogram[i]! > 0) q[i] = sum / nonZero;
    }
    const pTotal = p.reduce((a, b) => a + b, 0);
    const qTotal = q.reduce((a, b) => a + b, 0);
    if (pTotal === 0 || qTotal === 0) continue;
    let divergence = 0;
    for (let i = 0; i < keep; i++) {
      if (p[i]! === 0) continue;
      const pi = p[i]! / pTotal;
      const qi = q[i]! / qTotal;
      divergence += qi > 0 ? pi * Math.log(pi / qi) : pi * 20;
    }
    if (divergence < bestDivergence) {
      bestDivergence = divergence;
      best = keep;
    }
  }
  return best;
}
