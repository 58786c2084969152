// Distillation benchmark: the quantization bench's 784-1024-1024-10 Fashion-MNIST MLP (the teacher) distilled
// into a small MLP student; the same student trained on hard labels only as the reference; accuracy on t10k,
// parameters, size, and latency at batch 1 and 64 (ONNX Runtime CPU, 1 intra-op thread), teacher and
// student interleaved round by round in the same run. With --qat, a QAT student is trained too and both are
// quantized with `caliper quantize --mode dynamic --per-channel` to compare their INT8 accuracy.
// Usage: node --import tsx bench/distill.ts [--teacher T.onnx] [--student mlp:256,128] [--epochs 10] [--temperature 4] [--alpha 0.9] [--rounds 30] [--qat] [--out FILE]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/optimize/datasets/dataset.ts';
import { distill } from '../src/optimize/distill/distiller.ts';
import type { DistillReport } from '../src/optimize/distill/distill-report.ts';
import { compareLatency } from '../src/optimize/evaluate/latency.ts';
import { float32Tensor, openSession } from '../src/optimize/onnx/ort-session.ts';
import { quantize } from '../src/optimize/quantize/quantizer.ts';
import { trainFashionMlp } from './fashion-mlp-trainer.ts';

const { values: args } = parseArgs({ options: {
  student: { type: 'string', default: 'mlp:256,128' }, epochs: { type: 'string', default: '10' }, rounds: { type: 'string', default: '30' },
  temperature: { type: 'string', default: '4' }, alpha: { type: 'string', default: '0.9' }, qat: { type: 'boolean', default: false },
  out: { type: 'string', default: 'bench/results/distill.json' }, teacher: { type: 'string', default: 'bench/models/fashion-mlp.onnx' },
} });
const TEACHER = args.teacher!;
if (!existsSync(TEACHER) && TEACHER === 'bench/models/fashion-mlp.onnx') {
  console.log(`training the teacher ${TEACHER} (8 epochs)`);
  await trainFashionMlp(TEACHER, 8);
}
const test = await loadDataset('fashion-mnist:t10k');
const train = await loadDataset('fashion-mnist:train');
const common = {
  teacher: TEACHER, train, eval: test, student: args.student!, epochs: Number(args.epochs),
  temperature: Number(args.temperature), alpha: Number(args.alpha), latencyBatchSizes: [],
  progress: { onEpoch: (e: { epoch: number; loss: number; evalAccuracy?: number; seconds: number }) => console.log(`  epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, t10k ${(100 * e.evalAccuracy!).toFixed(2)}% (${e.seconds.toFixed(1)} s)`) },
};
console.log(`distilling ${TEACHER} into ${args.student} (+ hard-label baseline)`);
const started = performance.now();
const main = await distill({ ...common, baseline: true, output: `bench/models/fashion-student-${args.student!.replace(/[^a-z0-9]+/gi, "-")}-t${args.temperature}-a${args.alpha}.onnx` });
const wallSeconds = (performance.now() - started) / 1000;

// Latency: teacher vs student, interleaved round by round, 1 intra-op thread, more rounds than the CLI's report.
const teacherSession = await openSession(readFileSync(TEACHER), { intraOpNumThreads: 1 });
const studentSession = await openSession(main.bytes, { intraOpNumThreads: 1 });
const latency = [];
for (const batch of [1, 64]) {
  const feeds = { [teacherSession.inputNames[0]!]: float32Tensor(test.features.slice(0, batch * 784), [batch, 784]) };
  latency.push(await compareLatency(teacherSession, studentSession, feeds, batch, { rounds: Number(args.rounds), runsPerRound: batch === 1 ? 100 : 10 }));
}

let qat: { report: DistillReport; int8AccuracyPlain: number } | undefined;
if (args.qat) {
  console.log(`training a QAT student ${args.student}`);
  const qatRun = await distill({ ...common, qat: true, output: 'bench/models/fashion-student.qat.onnx' });
  const plainInt8 = await quantize(main.bytes, { mode: 'dynamic', perChannel: true, eval: test, latencyBatchSizes: [] });
  qat = { report: qatRun.report, int8AccuracyPlain: plainInt8.report.accuracy!.after };
}

const r = main.report;
const b = r.latency.length ? r.latency : latency;
const results = {
  teacher: { accuracy: r.teacher.accuracy, parameters: r.teacher.parameters, sizeBytes: r.teacher.sizeBytes },
  distilled: { accuracy: r.distilled.accuracy, agreement: r.distilled.agreement, accuracyRatio: r.accuracyRatio, parameters: r.distilled.parameters, sizeBytes: r.distilled.sizeBytes, sizeRatio: r.distilled.sizeBytes / r.teacher.sizeBytes, epochs: r.distilled.epochs.length, bestEpoch: r.distilled.bestEpoch, trainSeconds: r.distilled.trainSeconds, exportMaxAbsDiff: r.distilled.exportMaxAbsDiff },
  baseline: { accuracy: r.baseline!.accuracy, agreement: r.baseline!.agreement, epochs: r.baseline!.epochs.length, bestEpoch: r.baseline!.bestEpoch, trainSeconds: r.baseline!.trainSeconds },
  distilledMinusBaselinePt: (r.distilled.accuracy! - r.baseline!.accuracy!) * 100,
  latency: b.map((l) => ({ batchSize: l.batchSize, teacherMs: l.beforeMs, studentMs: l.afterMs, speedup: l.speedup })),
  teacherLogitsSeconds: r.teacherLogitsSeconds,
  distillationSeconds: r.teacherLogitsSeconds + r.distilled.trainSeconds,
  wallSecondsWithBaseline: wallSeconds,
  ...(qat ? { qat: { floatAccuracy: qat.report.distilled.accuracy, int8Accuracy: qat.report.int8!.accuracy, int8AccuracyOfPlainStudent: qat.int8AccuracyPlain, plainStudentFloatAccuracy: r.distilled.accuracy, epochs: qat.report.distilled.epochs.length, trainSeconds: qat.report.distilled.trainSeconds } } : {}),
};
const report = {
  command: `node --import tsx bench/distill.ts --teacher ${TEACHER} --student ${args.student} --epochs ${args.epochs} --temperature ${args.temperature} --alpha ${args.alpha} --rounds ${args.rounds}${args.qat ? ' --qat' : ''}`,
  machine: { cpus: cpus().length, model: cpus()[0]?.model, gpu: 'none', intraOpThreads: 1, note: 'shared with other engineers running tests; tfjs wasm trains on 1 thread' },
  date: new Date().toISOString(),
  settings: r.settings,
  teacher: TEACHER, student: r.student, results,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync(args.out!, `${JSON.stringify(report, null, 2)}\n`);
const pct = (x: number | undefined) => `${((x ?? 0) * 100).toFixed(2)}%`;
console.log('| model | t10k accuracy | vs teacher | agreement | params | size × | speedup b=1 | speedup b=64 |');
console.log('|---|---|---|---|---|---|---|---|');
console.log(`| teacher ${TEACHER} | ${pct(r.teacher.accuracy)} | 100% | 100% | ${r.teacher.parameters} | 1 | 1× | 1× |`);
console.log(`| distilled ${r.student} | ${pct(r.distilled.accuracy)} | ${pct(r.accuracyRatio)} | ${pct(r.distilled.agreement)} | ${r.distilled.parameters} | ${results.distilled.sizeRatio.toFixed(3)} | ${b[0]!.speedup.toFixed(2)}× | ${b[1]!.speedup.toFixed(2)}× |`);
console.log(`| hard-label baseline ${r.student} | ${pct(r.baseline!.accuracy)} | ${pct(r.baseline!.accuracy! / r.teacher.accuracy!)} | ${pct(r.baseline!.agreement)} | ${r.baseline!.parameters} | ${results.distilled.sizeRatio.toFixed(3)} | same | same |`);
console.log(`distillation: teacher logits ${r.teacherLogitsSeconds.toFixed(1)} s + training ${r.distilled.trainSeconds.toFixed(1)} s (${r.distilled.epochs.length} epochs); whole run with baseline ${wallSeconds.toFixed(0)} s`);
if (qat) console.log(`QAT: float ${pct(qat.report.distilled.accuracy)} → INT8 ${pct(qat.report.int8!.accuracy)}; plain student INT8 ${pct(qat.int8AccuracyPlain)}`);
