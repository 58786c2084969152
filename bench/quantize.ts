// Quantization benchmark: the 784-1024-1024-10 Fashion-MNIST MLP as float32, dynamic INT8, static INT8 and
// fp16; accuracy on t10k, size ratio and latency at batch 1 and 64 (1 intra-op thread), all in one run with
// the variants interleaved round by round so machine load hits them alike.
// Usage: node --import tsx bench/quantize.ts [--epochs 8] [--rounds 30]
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/optimize/datasets/dataset.ts';
import { openSession, float32Tensor, type OrtSession } from '../src/optimize/onnx/ort-session.ts';
import { quantize, type QuantizeOptions } from '../src/optimize/quantize/quantizer.ts';
import { argmaxRows } from '../src/optimize/evaluate/output-comparison.ts';
import { trainFashionMlp } from '../examples/training/onnx-mlp-trainer.ts';
import { median, speedupPerRound, timeInterleaved, type RoundTimes } from './interleaved-timing.ts';

const { values: args } = parseArgs({
  options: { epochs: { type: 'string', default: '8' }, rounds: { type: 'string', default: '30' } },
});
const MODEL = 'bench/models/fashion-mlp.onnx';
if (!existsSync(MODEL)) {
  console.log(`training ${MODEL} (${args.epochs} epochs)`);
  await trainFashionMlp(MODEL, Number(args.epochs));
}
const test = await loadDataset('fashion-mnist:t10k');
const variants: { name: string; options?: QuantizeOptions }[] = [
  { name: 'float32' },
  { name: 'dynamic', options: { mode: 'dynamic', perChannel: true, output: 'bench/models/fashion-mlp.dynamic.onnx' } },
  {
    name: 'static',
    options: {
      mode: 'static',
      perChannel: true,
      calibration: 'fashion-mnist:train',
      calibrationSamples: 1024,
      method: 'minmax',
      output: 'bench/models/fashion-mlp.static.onnx',
    },
  },
  { name: 'fp16', options: { mode: 'fp16', output: 'bench/models/fashion-mlp.fp16.onnx' } },
];
const floatBytes = readFileSync(MODEL);
const loadBefore = loadavg();
const rows: Record<
  string,
  {
    bytes: number;
    accuracy: number;
    maxAbsDiff: number;
    meanAbsDiff: number;
    agreement: number;
    session: OrtSession;
  }
> = {};
for (const v of variants) {
  let bytes: Uint8Array = floatBytes;
  let maxAbsDiff = 0;
  let meanAbsDiff = 0;
  let agreement = 1;
  if (v.options) {
    const result = await quantize(MODEL, { ...v.options, eval: test, latencyBatchSizes: [] });
    bytes = result.bytes;
    maxAbsDiff = result.report.outputDifference.maxAbs;
    meanAbsDiff = result.report.outputDifference.meanAbs;
    agreement = result.report.accuracy!.agreement;
  }
  const session = await openSession(bytes, { intraOpNumThreads: 1 });
  let correct = 0;
  for (let start = 0; start < test.count; start += 500) {
    const out = await session.run({
      image: float32Tensor(test.features.subarray(start * 784, (start + 500) * 784), [500, 784]),
    });
    const predicted = argmaxRows(out.logits!.data as Float32Array, 500);
    for (let i = 0; i < 500; i++) if (predicted[i] === test.labels![start + i]) correct++;
  }
  rows[v.name] = {
    bytes: bytes.length,
    accuracy: correct / test.count,
    maxAbsDiff,
    meanAbsDiff,
    agreement,
    session,
  };
  console.log(`${v.name}: ${bytes.length} bytes, accuracy ${((100 * correct) / test.count).toFixed(2)}%`);
}

const rounds = Number(args.rounds);
const sessions = Object.fromEntries(variants.map((v) => [v.name, rows[v.name]!.session]));
const times: Record<number, RoundTimes> = {};
for (const batch of [1, 64]) {
  const feeds = { image: float32Tensor(test.features.slice(0, batch * 784), [batch, 784]) };
  times[batch] = await timeInterleaved(sessions, feeds, { rounds, runs: batch === 1 ? 200 : 20 });
}
const results = Object.fromEntries(
  variants.map((v) => {
    const r = rows[v.name]!;
    const b64 = speedupPerRound(times[64]!, 'float32', v.name);
    return [
      v.name,
      {
        sizeBytes: r.bytes,
        sizeRatio: r.bytes / rows.float32!.bytes,
        accuracy: r.accuracy,
        accuracyDropPt: (rows.float32!.accuracy - r.accuracy) * 100,
        agreement: r.agreement,
        maxAbsDiff: r.maxAbsDiff,
        meanAbsDiff: r.meanAbsDiff,
        batch1Ms: median(times[1]![v.name]!),
        batch64Ms: median(times[64]![v.name]!),
        // Medians of the per-round ratios (each round times every variant back to back).
        speedupBatch1: speedupPerRound(times[1]!, 'float32', v.name).median,
        speedupBatch64: b64.median,
        speedupBatch64PerRound: { min: b64.min, max: b64.max },
      },
    ];
  }),
);
const report = {
  command: 'node --import tsx bench/quantize.ts',
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    gpu: 'none',
    intraOpThreads: 1,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
  },
  date: new Date().toISOString(),
  rounds,
  model: '784-1024-1024-10 MLP, Gemm layers, trained in-repo on Fashion-MNIST train',
  results,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/quantize.json', `${JSON.stringify(report, null, 2)}\n`);
console.log('| variant | size × | t10k accuracy | drop (pt) | agreement | max abs diff | speedup b=1 | speedup b=64 |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  console.log(
    `| ${name} | ${r.sizeRatio.toFixed(3)} | ${(r.accuracy * 100).toFixed(2)}% | ${r.accuracyDropPt.toFixed(2)} | ${(r.agreement * 100).toFixed(2)}% | ${r.maxAbsDiff.toExponential(2)} | ${r.speedupBatch1.toFixed(2)}× | ${r.speedupBatch64.toFixed(2)}× |`,
  );
}
