// Distillation benchmark: the quantization bench's 784-1024-1024-10 Fashion-MNIST MLP (the teacher) distilled
// into a small MLP student, against the same student trained on hard labels only, over several seeds (same
// seed, data, epochs and early-stopping rule for both; the seeds are paired). Early stopping uses a held-out
// tail of the training set (--validation-split, default the last 5 000 images), so t10k only scores. Latency
// at batch 1 and 64 (ONNX Runtime CPU, 1 intra-op thread) is timed for the first seed's student, teacher and
// student interleaved round by round in the same run. With --qat, a QAT student is trained too and both are
// quantized with `caliper quantize --mode dynamic --per-channel` to compare their INT8 accuracy.
// Usage: node --import tsx bench/distill.ts [--teacher T.onnx] [--student mlp:256,128] [--seeds 1,2,3,4,5]
//   [--epochs 20] [--patience =epochs] [--temperature 1] [--alpha 0.5] [--train-samples N] [--validation-split 5000]
//   [--rounds 30] [--augment-shift 1] [--lr 0.001] [--qat] [--skip-baseline] [--out FILE]
// Settings not given are `caliper distill`'s defaults (distillSettings, DEFAULT_IMAGE_SHIFT), so a run without them
// measures what a user of the CLI gets.
// --skip-baseline trains only the distilled students (for grids comparing distillation settings with each other);
// the baseline rows and the distilled − baseline figures are then absent.
// --augment-shift N moves every training image by up to N pixels per axis each epoch, for the distilled student
// (labelled by the teacher on the moved images) and its hard-label baseline alike (same offsets per seed).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/optimize/datasets/dataset.ts';
import { DEFAULT_IMAGE_SHIFT, distillSettings } from '../src/optimize/distill/distill-options.ts';
import { distill, type DistillResult } from '../src/optimize/distill/distiller.ts';
import type { TrainedFigures } from '../src/optimize/distill/distill-report.ts';
import { compareLatency } from '../src/optimize/evaluate/latency.ts';
import { float32Tensor, openSession } from '../src/optimize/onnx/ort-session.ts';
import { quantize } from '../src/optimize/quantize/quantizer.ts';
import { trainFashionMlp } from '../examples/training/onnx-mlp-trainer.ts';

const { values: args } = parseArgs({
  options: {
    student: { type: 'string', default: 'mlp:256,128' },
    seeds: { type: 'string', default: '1,2,3,4,5' },
    epochs: { type: 'string' },
    patience: { type: 'string' },
    rounds: { type: 'string', default: '30' },
    temperature: { type: 'string' },
    alpha: { type: 'string' },
    'train-samples': { type: 'string' },
    'validation-split': { type: 'string', default: '5000' },
    'augment-shift': { type: 'string' },
    lr: { type: 'string', default: '0.001' },
    qat: { type: 'boolean', default: false },
    'skip-baseline': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/distill.json' },
    teacher: { type: 'string', default: 'bench/models/fashion-mlp.onnx' },
  },
});
const TEACHER = args.teacher!;
const seeds = args.seeds!.split(',').map(Number);
if (seeds.some((s) => !Number.isInteger(s) || s < 1))
  throw new Error(`--seeds: expected positive integers, got ${args.seeds}`);
if (!existsSync(TEACHER) && TEACHER === 'bench/models/fashion-mlp.onnx') {
  console.log(`training the teacher ${TEACHER} (8 epochs)`);
  await trainFashionMlp(TEACHER, 8);
}
const test = await loadDataset('fashion-mnist:t10k');
const train = await loadDataset('fashion-mnist:train');
const withBaseline = !args['skip-baseline'];
const trainSamples = args['train-samples'] !== undefined ? Number(args['train-samples']) : undefined;
const given = (name: 'epochs' | 'patience' | 'temperature' | 'alpha'): number | undefined =>
  args[name] === undefined ? undefined : Number(args[name]);
const { settings } = distillSettings({
  teacher: TEACHER,
  train,
  student: args.student!,
  epochs: given('epochs'),
  patience: given('patience'),
  temperature: given('temperature'),
  alpha: given('alpha'),
});
// Fashion-MNIST samples are images, so the CLI's default shift for them applies.
const augmentShift = args['augment-shift'] === undefined ? DEFAULT_IMAGE_SHIFT : Number(args['augment-shift']);
args.epochs = String(settings.epochs);
args.patience = String(settings.patience);
args.temperature = String(settings.temperature);
args.alpha = String(settings.alpha);
args['augment-shift'] = String(augmentShift);
const common = {
  teacher: TEACHER,
  train,
  eval: test,
  student: args.student!,
  epochs: settings.epochs,
  patience: settings.patience,
  temperature: settings.temperature,
  alpha: settings.alpha,
  validationSplit: Number(args['validation-split']),
  augmentShift,
  learningRate: Number(args.lr),
  teacherThreads: 1,
  ...(trainSamples !== undefined ? { trainSamples } : {}),
  latencyBatchSizes: [],
};
const loadBefore = loadavg();
console.log(
  `distilling ${TEACHER} into ${args.student} (T=${args.temperature}, α=${args.alpha}, shifts ≤ ${args['augment-shift']} px, ≤ ${args.epochs} epochs)${withBaseline ? ' + hard-label baseline' : ''}, seeds ${seeds.join(',')}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
);

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const row = (f: TrainedFigures) => ({
  accuracy: f.accuracy!,
  agreement: f.agreement,
  epochs: f.epochs.length,
  bestEpoch: f.bestEpoch,
  trainSeconds: f.trainSeconds,
  exportMaxAbsDiff: f.exportMaxAbsDiff,
});
const started = performance.now();
const runs: {
  seed: number;
  distilled: ReturnType<typeof row>;
  baseline?: ReturnType<typeof row>;
  teacherLogitsSeconds: number;
  wallSeconds: number;
}[] = [];
let first: DistillResult | undefined;
for (const seed of seeds) {
  const runStart = performance.now();
  const result = await distill({
    ...common,
    seed,
    baseline: withBaseline,
    ...(first
      ? {}
      : {
          output: `bench/models/fashion-student-${args.student!.replace(/[^a-z0-9]+/gi, '-')}-t${args.temperature}-a${args.alpha}-s${args['augment-shift']}.onnx`,
        }),
  });
  first ??= result;
  const r = result.report;
  runs.push({
    seed,
    distilled: row(r.distilled),
    ...(r.baseline ? { baseline: row(r.baseline) } : {}),
    teacherLogitsSeconds: r.teacherLogitsSeconds,
    wallSeconds: (performance.now() - runStart) / 1000,
  });
  console.log(
    `  seed ${seed}: distilled ${pct(r.distilled.accuracy!)} (best epoch ${r.distilled.bestEpoch}/${r.distilled.epochs.length}, ${r.distilled.trainSeconds.toFixed(0)} s)${r.baseline ? `, baseline ${pct(r.baseline.accuracy!)} (best epoch ${r.baseline.bestEpoch}/${r.baseline.epochs.length}, ${r.baseline.trainSeconds.toFixed(0)} s)` : ''}`,
  );
}
const wallSeconds = (performance.now() - started) / 1000;
const r = first!.report;

/** Mean, sample standard deviation, min and max. */
function stats(values: number[]) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = values.length > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, std, min: Math.min(...values), max: Math.max(...values), n: values.length };
}
const distilledAcc = stats(runs.map((x) => x.distilled.accuracy));
/** The baseline's figures and distilled − baseline, paired by seed (absent with --skip-baseline). */
function baselineComparison() {
  const paired = runs.flatMap((x) => (x.baseline ? [{ distilled: x.distilled, baseline: x.baseline }] : []));
  if (paired.length === 0) return undefined;
  const accuracy = stats(paired.map((x) => x.baseline.accuracy));
  const differencePt = stats(paired.map((x) => (x.distilled.accuracy - x.baseline.accuracy) * 100));
  const wins = paired.filter((x) => x.distilled.accuracy > x.baseline.accuracy).length;
  // The paired t statistic: how many standard errors the mean per-seed difference is from zero.
  const pairedT = differencePt.std > 0 ? differencePt.mean / (differencePt.std / Math.sqrt(differencePt.n)) : Infinity;
  return {
    accuracy,
    agreement: stats(paired.map((x) => x.baseline.agreement)),
    differencePt,
    wins,
    pairedT,
    perSeedPt: paired.map((x) => ((x.distilled.accuracy - x.baseline.accuracy) * 100).toFixed(2)),
  };
}
const compared = baselineComparison();

// Latency: teacher vs the first seed's student, interleaved round by round, 1 intra-op thread.
const teacherSession = await openSession(readFileSync(TEACHER), { intraOpNumThreads: 1 });
const studentSession = await openSession(first!.bytes, { intraOpNumThreads: 1 });
const latency = [];
for (const batch of [1, 64]) {
  const feeds = { [teacherSession.inputNames[0]!]: float32Tensor(test.features.slice(0, batch * 784), [batch, 784]) };
  latency.push(
    await compareLatency(teacherSession, studentSession, feeds, batch, {
      rounds: Number(args.rounds),
      runsPerRound: batch === 1 ? 100 : 10,
    }),
  );
}
await teacherSession.release();
await studentSession.release();

let qat:
  | {
      floatAccuracy: number;
      int8Accuracy: number;
      int8AccuracyOfPlainStudent: number;
      plainStudentFloatAccuracy: number;
      epochs: number;
      trainSeconds: number;
    }
  | undefined;
if (args.qat) {
  console.log(`training a QAT student ${args.student} (seed ${seeds[0]})`);
  const qatRun = await distill({
    ...common,
    seed: seeds[0]!,
    qat: true,
    output: 'bench/models/fashion-student.qat.onnx',
  });
  const plainInt8 = await quantize(first!.bytes, {
    mode: 'dynamic',
    perChannel: true,
    eval: test,
    latencyBatchSizes: [],
  });
  qat = {
    floatAccuracy: qatRun.report.distilled.accuracy!,
    int8Accuracy: qatRun.report.int8!.accuracy!,
    int8AccuracyOfPlainStudent: plainInt8.report.accuracy!.after,
    plainStudentFloatAccuracy: r.distilled.accuracy!,
    epochs: qatRun.report.distilled.epochs.length,
    trainSeconds: qatRun.report.distilled.trainSeconds,
  };
}

const teacherAccuracy = r.teacher.accuracy!;
const results = {
  teacher: { accuracy: teacherAccuracy, parameters: r.teacher.parameters, sizeBytes: r.teacher.sizeBytes },
  student: {
    parameters: r.distilled.parameters,
    sizeBytes: r.distilled.sizeBytes,
    sizeRatio: r.distilled.sizeBytes / r.teacher.sizeBytes,
  },
  distilled: {
    accuracy: distilledAcc,
    accuracyRatio: distilledAcc.mean / teacherAccuracy,
    agreement: stats(runs.map((x) => x.distilled.agreement)),
  },
  ...(compared
    ? {
        baseline: {
          accuracy: compared.accuracy,
          accuracyRatio: compared.accuracy.mean / teacherAccuracy,
          agreement: compared.agreement,
        },
        distilledMinusBaselinePt: { ...compared.differencePt, wins: compared.wins, pairedT: compared.pairedT },
      }
    : {}),
  perSeed: runs,
  latency: latency.map((l) => ({
    batchSize: l.batchSize,
    teacherMs: l.beforeMs,
    studentMs: l.afterMs,
    speedup: l.speedup,
  })),
  // One distillation as the CLI runs it: teacher logits + training the distilled student (no baseline).
  distillationSeconds: stats(runs.map((x) => x.teacherLogitsSeconds + x.distilled.trainSeconds)),
  wallSecondsAllSeedsWithBaselines: wallSeconds,
  ...(qat ? { qat } : {}),
};
const command = `node --import tsx bench/distill.ts --teacher ${TEACHER} --student ${args.student} --seeds ${args.seeds} --epochs ${args.epochs} --patience ${args.patience} --temperature ${args.temperature} --alpha ${args.alpha}${trainSamples !== undefined ? ` --train-samples ${trainSamples}` : ''} --validation-split ${args['validation-split']} --augment-shift ${args['augment-shift']} --lr ${args.lr} --rounds ${args.rounds}${args.qat ? ' --qat' : ''}${withBaseline ? '' : ' --skip-baseline'} --out ${args.out}`;
const report = {
  command,
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    gpu: 'none',
    intraOpThreads: 1,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
    note: 'shared with other engineers running benchmarks; tfjs wasm trains on 1 thread',
  },
  date: new Date().toISOString(),
  settings: r.settings,
  data: r.data,
  teacher: TEACHER,
  student: r.student,
  results,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync(args.out!, `${JSON.stringify(report, null, 2)}\n`);

const spread = (s: { mean: number; std: number; min: number; max: number }) =>
  `${pct(s.mean)} ± ${(s.std * 100).toFixed(2)} (${pct(s.min)}–${pct(s.max)})`;
const b = results.latency;
console.log(
  `| model | t10k accuracy, mean ± sd (min–max), ${seeds.length} seeds | vs teacher | agreement | params | size × | speedup b=1 | speedup b=64 |`,
);
console.log('|---|---|---|---|---|---|---|---|');
console.log(`| teacher ${TEACHER} | ${pct(teacherAccuracy)} | 100% | 100% | ${r.teacher.parameters} | 1 | 1× | 1× |`);
console.log(
  `| distilled ${r.student} | ${spread(distilledAcc)} | ${pct(results.distilled.accuracyRatio)} | ${pct(results.distilled.agreement.mean)} | ${r.distilled.parameters} | ${results.student.sizeRatio.toFixed(3)} | ${b[0]!.speedup.toFixed(2)}× | ${b[1]!.speedup.toFixed(2)}× |`,
);
if (compared) {
  const d = compared.differencePt;
  console.log(
    `| hard-label baseline ${r.student} | ${spread(compared.accuracy)} | ${pct(compared.accuracy.mean / teacherAccuracy)} | ${pct(compared.agreement.mean)} | ${r.distilled.parameters} | ${results.student.sizeRatio.toFixed(3)} | same | same |`,
  );
  console.log(
    `distilled − baseline: ${d.mean >= 0 ? '+' : ''}${d.mean.toFixed(2)} ± ${d.std.toFixed(2)} pt (per seed ${compared.perSeedPt.join(', ')}; distilled ahead in ${compared.wins}/${runs.length}; paired t ${compared.pairedT.toFixed(2)})`,
  );
}
console.log(
  `one distillation: ${results.distillationSeconds.mean.toFixed(0)} s mean (max ${results.distillationSeconds.max.toFixed(0)} s); all ${seeds.length} seeds${withBaseline ? ' with baselines' : ''} ${wallSeconds.toFixed(0)} s; load average after ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
if (qat)
  console.log(
    `QAT: float ${pct(qat.floatAccuracy)} → INT8 ${pct(qat.int8Accuracy)}; plain student INT8 ${pct(qat.int8AccuracyOfPlainStudent)}`,
  );
