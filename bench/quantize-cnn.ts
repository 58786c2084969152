// Static INT8 of a small convnet: conv 3×3 ×32 → maxpool → conv 3×3 ×64 → maxpool → fc 256 → fc 10 on Fashion-MNIST.
// Float32 against static INT8 (per-channel, minmax, 1024 calibration images) and dynamic INT8: t10k accuracy, size, the
// kernels ONNX Runtime ran, and latency at batch 1 and 64 (1 intra-op thread) with the variants interleaved round by round.
// The CNN is built and trained with the project's own tools (a hard-label `caliper distill` run, see BENCHMARKS.md):
//   node bin/caliper.js distill --teacher examples/fashion-mnist/1/model.onnx --train fashion-mnist:train --eval fashion-mnist:t10k \
//     --eval-samples 1000 --student cnn:32,64/256 --alpha 0 --epochs 2 --train-samples 15000 --lr 0.002 -o bench/models/fashion-cnn.onnx
// Usage: node --import tsx bench/quantize-cnn.ts [--model bench/models/fashion-cnn.onnx] [--rounds 15]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/optimize/datasets/dataset.ts';
import { argmaxRows } from '../src/optimize/evaluate/output-comparison.ts';
import { float32Tensor, openSession, type OrtSession } from '../src/optimize/onnx/ort-session.ts';
import { quantize, type QuantizeOptions } from '../src/optimize/quantize/quantizer.ts';
import type { KernelSummary } from '../src/optimize/evaluate/kernel-profile.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'bench/models/fashion-cnn.onnx' },
    rounds: { type: 'string', default: '15' },
  },
});
const MODEL = args.model!;
const test = await loadDataset('fashion-mnist:t10k');
const variants: { name: string; options?: QuantizeOptions }[] = [
  { name: 'float32' },
  {
    name: 'static',
    options: {
      mode: 'static',
      perChannel: true,
      calibration: 'fashion-mnist:train',
      calibrationSamples: 1024,
      method: 'minmax',
    },
  },
  // The first (1-channel) convolution left in float: shows why the default quantizes it.
  {
    name: 'static, conv1 float',
    options: {
      mode: 'static',
      perChannel: true,
      calibration: 'fashion-mnist:train',
      calibrationSamples: 1024,
      method: 'minmax',
      minConvReduction: 16,
    },
  },
  { name: 'dynamic', options: { mode: 'dynamic', perChannel: true } },
];
const floatBytes = readFileSync(MODEL);
const loadBefore = loadavg();
interface Row {
  bytes: number;
  accuracy: number;
  agreement: number;
  kernels?: KernelSummary;
  session: OrtSession;
  ms: Record<number, number[]>;
}
const rows: Record<string, Row> = {};
let inputName = '';
for (const v of variants) {
  let bytes: Uint8Array = floatBytes;
  let agreement = 1;
  let kernels: KernelSummary | undefined;
  if (v.options) {
    const result = await quantize(MODEL, { ...v.options, eval: test, latencyBatchSizes: [], force: true });
    bytes = result.bytes;
    agreement = result.report.accuracy!.agreement;
    kernels = result.report.kernels;
    for (const w of result.report.warnings) console.log(`  ${v.name}: warning: ${w}`);
  }
  const session = await openSession(bytes, { intraOpNumThreads: 1 });
  inputName = session.inputNames[0]!;
  let correct = 0;
  for (let start = 0; start < test.count; start += 500) {
    const out = await session.run({
      [inputName]: float32Tensor(test.features.subarray(start * 784, (start + 500) * 784), [500, 784]),
    });
    const predicted = argmaxRows(out[session.outputNames[0]!]!.data as Float32Array, 500);
    for (let i = 0; i < 500; i++) if (predicted[i] === test.labels![start + i]) correct++;
  }
  rows[v.name] = {
    bytes: bytes.length,
    accuracy: correct / test.count,
    agreement,
    ...(kernels ? { kernels } : {}),
    session,
    ms: { 1: [], 64: [] },
  };
  console.log(
    `${v.name}: ${bytes.length} bytes, accuracy ${((100 * correct) / test.count).toFixed(2)}%${kernels ? `, kernels ${JSON.stringify(kernels)}` : ''}`,
  );
}

const rounds = Number(args.rounds);
for (const batch of [1, 64]) {
  const feeds = { [inputName]: float32Tensor(test.features.slice(0, batch * 784), [batch, 784]) };
  const runs = batch === 1 ? 100 : 10;
  for (const r of Object.values(rows)) for (let i = 0; i < 5; i++) await r.session.run(feeds);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...variants].reverse() : variants;
    for (const v of order) {
      const r = rows[v.name]!;
      const start = process.hrtime.bigint();
      for (let i = 0; i < runs; i++) await r.session.run(feeds);
      r.ms[batch]!.push(Number(process.hrtime.bigint() - start) / 1e6 / runs);
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const base = rows.float32!;
const results = Object.fromEntries(
  variants.map((v) => {
    const r = rows[v.name]!;
    const perRound = r.ms[64]!.map((m, i) => base.ms[64]![i]! / m).sort((a, b) => a - b);
    return [
      v.name,
      {
        sizeBytes: r.bytes,
        sizeRatio: r.bytes / base.bytes,
        accuracy: r.accuracy,
        accuracyDropPt: (base.accuracy - r.accuracy) * 100,
        agreement: r.agreement,
        kernels: r.kernels,
        batch1Ms: median(r.ms[1]!),
        batch64Ms: median(r.ms[64]!),
        speedupBatch1: median(base.ms[1]!) / median(r.ms[1]!),
        speedupBatch64: median(base.ms[64]!) / median(r.ms[64]!),
        // Per-round ratios (each round times every variant back to back): their spread says how much machine noise there was.
        speedupBatch64PerRound: { min: perRound[0], median: median(perRound), max: perRound[perRound.length - 1] },
      },
    ];
  }),
);
const report = {
  command: `node --import tsx bench/quantize-cnn.ts --model ${MODEL} --rounds ${rounds}`,
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
  model:
    'conv3x3x32-relu-maxpool-conv3x3x64-relu-maxpool-fc256-relu-fc10, trained in-repo (caliper distill --alpha 0, 15000 train images, 2 epochs)',
  results,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/quantize-cnn.json', `${JSON.stringify(report, null, 2)}\n`);
console.log(
  `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(
  '| variant | size × | t10k accuracy | drop (pt) | agreement | b=1 ms | b=64 ms | speedup b=1 | speedup b=64 (per-round min–max) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  console.log(
    `| ${name} | ${r.sizeRatio.toFixed(3)} | ${(r.accuracy * 100).toFixed(2)}% | ${r.accuracyDropPt.toFixed(2)} | ${(r.agreement * 100).toFixed(2)}% | ${r.batch1Ms.toFixed(3)} | ${r.batch64Ms.toFixed(2)} | ${r.speedupBatch1.toFixed(2)}× | ${r.speedupBatch64.toFixed(2)}× (${r.speedupBatch64PerRound.min!.toFixed(2)}–${r.speedupBatch64PerRound.max!.toFixed(2)}) |`,
  );
}
