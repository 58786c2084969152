// The fraud example optimized through its model.yaml: request rows (two numbers and a category) → the model folder's
// preprocess → dynamic INT8, static INT8 and a distilled student, each with accuracy and latency from its own report.
// Rows come from examples/fraud-detector/train.ts's generator (other seeds than the model was trained on).
// Usage: node --import tsx bench/optimize-fraud.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { syntheticTransactions } from '../examples/fraud-detector/train.ts';
import { loadRequestData, RequestPipeline } from '../src/optimize/datasets/request-data.ts';
import { distill } from '../src/optimize/distill/distiller.ts';
import { resolveModelSource } from '../src/optimize/model-source.ts';
import { quantize } from '../src/optimize/quantize/quantizer.ts';

mkdirSync('bench/data', { recursive: true });
const write = (path: string, count: number, seed: number) => {
  const { transactions, labels } = syntheticTransactions(count, seed);
  writeFileSync(
    path,
    `transaction_amount,merchant_category,time_since_last_txn,is_fraud\n${transactions.map((t, i) => `${t.transaction_amount},${t.merchant_category},${t.time_since_last_txn},${labels[i]}`).join('\n')}\n`,
  );
};
write('bench/data/fraud-train.csv', 20000, 101);
write('bench/data/fraud-eval.csv', 5000, 202);
const loadBefore = loadavg();
const source = await resolveModelSource('examples/fraud-detector/1');
const pipeline = await RequestPipeline.open(source.config, source.version);
const train = await loadRequestData('bench/data/fraud-train.csv', pipeline, { purpose: 'training', label: 'is_fraud' });
const evalData = await loadRequestData('bench/data/fraud-eval.csv', pipeline, { purpose: 'eval', label: 'is_fraud' });
await pipeline.close();
const results: Record<string, unknown> = {};
for (const mode of ['dynamic', 'static'] as const) {
  const { report } = await quantize(source.modelPath, {
    mode,
    ...(mode === 'static' ? { calibration: train, calibrationSamples: 2048 } : {}),
    eval: evalData,
  });
  results[mode] = {
    accuracy: report.accuracy,
    size: report.size,
    latency: report.latency,
    kernels: report.kernels,
    guard: report.guard,
  };
  console.log(
    `${mode}: accuracy ${(report.accuracy!.before * 100).toFixed(2)}% → ${(report.accuracy!.after * 100).toFixed(2)}%, size ×${report.size.ratio.toFixed(2)}, ${report.latency.map((l) => `b=${l.batchSize} ${l.beforeMs.toFixed(3)} → ${l.afterMs.toFixed(3)} ms`).join(', ')}; guard ${report.guard.passed ? 'passed' : `failed: ${report.guard.reasons.join('; ')}`}`,
  );
}
const { report } = await distill({
  teacher: source.modelPath,
  train,
  eval: evalData,
  student: 'mlp:16',
  epochs: 10,
  baseline: true,
});
results.distill = {
  teacher: report.teacher,
  student: { accuracy: report.distilled.accuracy, parameters: report.distilled.parameters },
  baseline: { accuracy: report.baseline?.accuracy },
  latency: report.latency,
};
console.log(
  `distill mlp:16: teacher ${(report.teacher.accuracy! * 100).toFixed(2)}%, student ${(report.distilled.accuracy! * 100).toFixed(2)}%, hard labels ${(report.baseline!.accuracy! * 100).toFixed(2)}%, ${report.latency.map((l) => `b=${l.batchSize} ${l.beforeMs.toFixed(3)} → ${l.afterMs.toFixed(3)} ms`).join(', ')}`,
);
const out = {
  command: 'node --import tsx bench/optimize-fraud.ts',
  date: new Date().toISOString(),
  loadAverageBefore: loadBefore,
  loadAverageAfter: loadavg(),
  results,
};
writeFileSync('bench/results/optimize-fraud.json', `${JSON.stringify(out, null, 2)}\n`);
console.log(
  `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
