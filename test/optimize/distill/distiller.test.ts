import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../../src/optimize/datasets/dataset.ts';
import { DistillError } from '../../../src/optimize/distill/distill-error.ts';
import { distill, type DistillOptions } from '../../../src/optimize/distill/distiller.ts';
import { formatDistillReport, meanSd, summariseSeeds } from '../../../src/optimize/distill/distill-report.ts';
import { GraphBuilder, tensorFromArray } from '../../../src/optimize/onnx/graph-builder.ts';
import { encodeModel, readModelFile } from '../../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../../src/optimize/onnx/onnx-schema.ts';

const FLOAT = TensorDataType.FLOAT;
const FEATURES = 4;
const CLASSES = 3;
const WEIGHTS = new Float32Array([3, -1, 0, -2, 2, 1, 0, -3, 2, 1, 1, -2]);

/** A linear 4 → 3 teacher; `head` changes what it outputs. */
function teacher(head: 'logits' | 'softmax' | 'score' | 'argmax' = 'logits'): Uint8Array {
  const b = new GraphBuilder('teacher', 17);
  const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', FEATURES] });
  const [logits] = b.node('Gemm', [
    x,
    b.initializer(tensorFromArray('w', [FEATURES, CLASSES], WEIGHTS)),
    b.initializer(tensorFromArray('b', [CLASSES], new Float32Array([0.5, -1, 0.2]))),
  ]);
  if (head === 'logits') {
    b.node('Identity', [logits!], {}, ['y']);
    b.output({ name: 'y', elemType: FLOAT, shape: ['N', CLASSES] });
  } else if (head === 'softmax') {
    b.node('Softmax', [logits!], { axis: 1 }, ['probabilities']);
    b.output({ name: 'probabilities', elemType: FLOAT, shape: ['N', CLASSES] });
  } else if (head === 'score') {
    b.node('ReduceMax', [logits!], { axes: [1], keepdims: 1 }, ['score']);
    b.output({ name: 'score', elemType: FLOAT, shape: ['N', 1] });
  } else {
    b.node('ArgMax', [logits!], { axis: 1, keepdims: 0 }, ['label']);
    b.output({ name: 'label', elemType: TensorDataType.INT64, shape: ['N'] });
  }
  return encodeModel(b.build());
}

/** Uniform [0, 1) samples labelled by the teacher's argmax (so the teacher is 100% accurate). */
function data(count: number, options: { features?: number; labels?: boolean; seed?: number } = {}): Dataset {
  const features = options.features ?? FEATURES;
  let state = options.seed ?? 5;
  const values = Float32Array.from(
    { length: count * features },
    () => ((state = (state * 48271) % 2147483647) / 2147483647) * 2 - 1,
  );
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    let best = -Infinity;
    for (let c = 0; c < CLASSES; c++) {
      let z = [0.5, -1, 0.2][c]!;
      for (let f = 0; f < FEATURES; f++) z += values[i * features + f]! * WEIGHTS[f * CLASSES + c]!;
      if (z > best) [best, labels[i]] = [z, c];
    }
  }
  return {
    source: 'synthetic',
    features: values,
    featureShape: [features],
    count,
    ...(options.labels === false ? {} : { labels }),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'caliper-distill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs distill, failing the test if training ever starts. */
async function refused(options: Partial<DistillOptions>): Promise<DistillError> {
  const phases: string[] = [];
  const error = await distill({
    teacher: teacher(),
    train: data(64),
    student: 'mlp:8',
    output: join(dir, 'never.onnx'),
    latencyBatchSizes: [],
    progress: { onPhase: (phase) => phases.push(phase) },
    ...options,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DistillError);
  expect(phases).toEqual([]);
  expect(existsSync(join(dir, 'never.onnx'))).toBe(false);
  return error as DistillError;
}

describe('distill: bad input is refused before training', () => {
  it('teacher/data shape mismatch', async () => {
    const error = await refused({ train: data(64, { features: 5 }) });
    expect(error.code).toBe('CALIPER_DISTILL_DATA');
    expect(error.message).toMatch(/teacher\/data mismatch: .*5 values per sample.*expects \[N, 4\]/);
  });

  it('eval data of another shape than the training data', async () => {
    const error = await refused({ eval: data(16, { features: 6 }) });
    expect(error.message).toMatch(/eval data synthetic has 6 values per sample, training data synthetic has 4/);
  });

  it('no labels with alpha < 1', async () => {
    const error = await refused({ train: data(64, { labels: false }), alpha: 0.7 });
    expect(error.code).toBe('CALIPER_DISTILL_DATA');
    expect(error.message).toMatch(/has no labels, but alpha 0.7 < 1 .*--alpha 1/);
  });

  it('--baseline without labels', async () => {
    expect((await refused({ train: data(64, { labels: false }), alpha: 1, baseline: true })).message).toMatch(
      /--baseline trains on hard labels/,
    );
  });

  it.each(['score', 'argmax'] as const)('a teacher without logits-like output (%s)', async (head) => {
    const error = await refused({ teacher: teacher(head) });
    expect(error.code).toBe('CALIPER_DISTILL_TEACHER');
    // A one-column output is accepted only as probabilities (a binary classifier); a max logit is not one.
    expect(error.message).toMatch(
      head === 'score'
        ? /teacher output score is not logits-like: expected \[N, C\] with C ≥ 2 classes, or \[N, 1\] probabilities, got \[16, 1\]/
        : /no logits-like output: expected a float output shaped \[N, C\] with C ≥ 2 classes, or \[N, 1\] probabilities; its outputs are label/,
    );
  });

  it('a teacher that is not ONNX, or missing', async () => {
    expect((await refused({ teacher: new Uint8Array([1, 2, 3, 4, 5]) })).code).toBe('CALIPER_DISTILL_TEACHER');
    expect((await refused({ teacher: join(dir, 'missing.onnx') })).message).toMatch(
      /cannot read teacher model .*missing\.onnx: no such file/,
    );
  });

  it("labels beyond the teacher's classes", async () => {
    const train = data(64);
    train.labels![3] = 7;
    expect((await refused({ train })).message).toMatch(/labels from 0 to 7, but the teacher's output has 3 classes/);
  });

  it('bad student specs and options', async () => {
    expect((await refused({ student: 'rnn:4' })).code).toBe('CALIPER_DISTILL_STUDENT_SPEC');
    expect((await refused({ student: 'mlp:8,x' })).message).toMatch(/hidden widths must be integers/);
    expect((await refused({ student: 'cnn:4,4' })).message).toMatch(/pools a 2×2 image 2 times .*leaves nothing/);
    expect((await refused({ alpha: 1.5 })).message).toMatch(/alpha must be a number from 0 to 1, got 1.5/);
    expect((await refused({ temperature: 0 })).message).toMatch(/temperature must be a number > 0/);
    expect((await refused({ validationSplit: 64 })).message).toMatch(
      /validation split 64 holds out 64 of the 64 training samples/,
    );
    expect((await refused({ validationSplit: 1.5 })).message).toMatch(
      /validation split must be a fraction in \(0, 1\) or a whole number/,
    );
  });
});

describe('distill: a small run end to end', () => {
  it('trains a student that agrees with the teacher, writes it, and reports baseline and INT8 rows', async () => {
    const output = join(dir, 'student.onnx');
    const epochs: number[] = [];
    const { report } = await distill({
      teacher: teacher('softmax'),
      train: data(512),
      eval: data(256, { seed: 99 }),
      student: 'mlp:16',
      epochs: 4,
      batchSize: 32,
      learningRate: 0.02,
      alpha: 0.8,
      baseline: true,
      qat: true,
      output,
      latencyBatchSizes: [1],
      progress: { onEpoch: (e) => epochs.push(e.epoch) },
    });
    expect(existsSync(output)).toBe(true);
    expect(readModelFile(output).graph?.input?.[0]?.name).toBe('x');
    expect(epochs.length).toBeGreaterThanOrEqual(2);
    expect(report.teacher.accuracy).toBe(1);
    expect(report.distilled.agreement).toBeGreaterThan(0.85);
    expect(report.distilled.exportMaxAbsDiff).toBeLessThan(1e-4);
    expect(report.baseline!.parameters).toBe(report.distilled.parameters);
    expect(report.int8!.sizeBytes).toBeGreaterThan(0);
    expect(report.latency.map((l) => l.batchSize)).toEqual([1]);
    expect(report.warnings.join()).toMatch(/probabilities \(softmax\); its logarithm is used/);
  });
});

describe('distill: --validation-split', () => {
  it('stops early on the last training samples, trains on the rest, and scores on the eval data', async () => {
    const train = data(512);
    const stopped: number[] = [];
    const { report } = await distill({
      teacher: teacher(),
      train,
      eval: data(100, { seed: 99 }),
      student: 'mlp:4',
      validationSplit: 0.25,
      trainSamples: 200,
      epochs: 2,
      batchSize: 64,
      learningRate: 0.02,
      latencyBatchSizes: [],
      progress: { onEpoch: (e) => stopped.push(e.evalAccuracy!) },
    });
    expect(report.data.trainSamples).toBe(200);
    expect(report.data.earlyStopping).toBe('validation: last 128 training samples');
    expect(report.data.evalSamples).toBe(100);
    expect(stopped).toHaveLength(2);
    expect(report.warnings.join()).not.toMatch(/early stopping selects epochs on the eval data/);
  });
});

describe('distill: --seeds', () => {
  it('mean and sample standard deviation, and the paired difference counted per seed', () => {
    expect(meanSd([0.8, 0.9, 1.0])).toEqual({ mean: 0.9, sd: expect.closeTo(0.1, 12), min: 0.8, max: 1.0 });
    expect(meanSd([0.7])).toEqual({ mean: 0.7, sd: 0, min: 0.7, max: 0.7 });
    const figures = (accuracy: number) => ({ accuracy, agreement: 1, bestEpoch: 1, epochs: 1, trainSeconds: 1 });
    const summary = summariseSeeds(
      [
        { seed: 1, distilled: figures(0.9), baseline: figures(0.88) },
        { seed: 2, distilled: figures(0.89), baseline: figures(0.9) },
        { seed: 3, distilled: figures(0.91), baseline: figures(0.88) },
      ],
      0.95,
    );
    expect(summary.seeds).toEqual([1, 2, 3]);
    expect(summary.ahead).toBe(2);
    expect(summary.differencePt!.mean).toBeCloseTo(((2 - 1 + 3) / 3) * 1, 10);
    expect(summary.accuracyRatio!.mean).toBeCloseTo(0.9 / 0.95, 10);
    expect(summary.baseline!.min).toBe(0.88);
  });

  it('trains one student and baseline per seed on the same teacher logits and reports mean ± sd; the first seed is written', async () => {
    const phases: string[] = [];
    const { report } = await distill({
      teacher: teacher(),
      train: data(256),
      eval: data(128, { seed: 99 }),
      student: 'mlp:4',
      epochs: 2,
      batchSize: 64,
      learningRate: 0.02,
      baseline: true,
      seed: 4,
      seeds: 3,
      latencyBatchSizes: [],
      progress: { onPhase: (phase) => phases.push(phase) },
    });
    expect(phases.filter((p) => p === 'teacher-logits')).toHaveLength(1);
    expect(phases).toContain('distill seed 6');
    expect(phases).toContain('baseline seed 6');
    const seeds = report.seeds!;
    expect(seeds.seeds).toEqual([4, 5, 6]);
    expect(seeds.runs[0]!.distilled.accuracy).toBe(report.distilled.accuracy);
    expect(seeds.runs[0]!.baseline!.accuracy).toBe(report.baseline!.accuracy);
    const accuracies = seeds.runs.map((r) => r.distilled.accuracy!);
    expect(seeds.distilled!.mean).toBeCloseTo(accuracies.reduce((a, b) => a + b) / 3, 12);
    expect(seeds.differencePt!.mean).toBeCloseTo((seeds.distilled!.mean - seeds.baseline!.mean) * 100, 10);
    const text = formatDistillReport(report);
    expect(text).toMatch(
      /over 3 seeds \(4, 5, 6; mean ± sd\): student \d+\.\d\d ± \d+\.\d\d%, baseline \d+\.\d\d ± \d+\.\d\d%, distilled − baseline [+-]\d+\.\d\d ± \d+\.\d\d pt \(ahead on \d of 3\), \d+\.\d ± \d+\.\d% of the teacher's accuracy; the rows above and the written model are seed 4's/,
    );
  });

  it('refuses a seed count that is not a positive integer', async () => {
    expect((await refused({ seeds: 0 })).message).toMatch(/seeds must be an integer >= 1, got 0/);
  });
});
