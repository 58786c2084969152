// Static INT8 of a small convnet: conv 3×3 ×32 → ReLU → maxpool → conv 3×3 ×64 → ReLU → maxpool → fc 256 → ReLU → fc 10
// on Fashion-MNIST. Float32 against static INT8 (per-channel int8 weights, uint8 activations, minmax, 1024 calibration
// images; the default placement and every convolution quantized) and dynamic INT8: t10k accuracy, size, the kernels
// ONNX Runtime ran (its profiler), and latency at batch 1 and 64 (1 intra-op thread), the variants interleaved round by
// round (bench/interleaved-timing.ts, shared with bench/quantize.ts); speed-ups are medians of per-round ratios.
// The CNN is trained by the bench-only script bench/train-fashion-cnn.py (Debian's python3-torch):
//   /usr/bin/python3 bench/train-fashion-cnn.py --out bench/models/fashion-cnn.onnx
// Usage: flock /tmp/caliper-bench.lock nice -n 5 node --import tsx bench/quantize-cnn.ts [--model bench/models/fashion-cnn.onnx] [--rounds 21]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/optimize/datasets/dataset.ts';
import { argmaxRows } from '../src/optimize/evaluate/output-comparison.ts';
import { float32Tensor, openSession, type OrtSession } from '../src/optimize/onnx/ort-session.ts';
import { quantize, type QuantizeOptions } from '../src/optimize/quantize/quantizer.ts';
import type { KernelSummary } from '../src/optimize/evaluate/kernel-profile.ts';
import { execFileSync } from 'node:child_process';
import { median, speedupPerRound, timeInterleaved, type RoundTimes } from './interleaved-timing.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'bench/models/fashion-cnn.onnx' },
    rounds: { type: 'string', default: '21' },
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
  // Every convolution quantized, the 1-channel first one included (the placement before poolBeforeRelu).
  {
    name: 'static, all convolutions',
    options: {
      mode: 'static',
      perChannel: true,
      calibration: 'fashion-mnist:train',
      calibrationSamples: 1024,
      method: 'minmax',
      minConvReduction: 0,
    },
  },
  { name: 'dynamic', options: { mode: 'dynamic', perChannel: true } },
];
const floatBytes = readFileSync(MODEL);
const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
const loadBefore = loadavg();
const uptimeBefore = uptime();
interface Row {
  bytes: number;
  accuracy: number;
  agreement: number;
  kernels?: KernelSummary;
  session: OrtSession;
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
  };
  console.log(
    `${v.name}: ${bytes.length} bytes, accuracy ${((100 * correct) / test.count).toFixed(2)}%${kernels ? `, kernels ${JSON.stringify(kernels)}` : ''}`,
  );
}

const rounds = Number(args.rounds);
const sessions = Object.fromEntries(variants.map((v) => [v.name, rows[v.name]!.session]));
const times: Record<number, RoundTimes> = {};
for (const batch of [1, 64]) {
  const feeds = { [inputName]: float32Tensor(test.features.slice(0, batch * 784), [batch, 784]) };
  times[batch] = await timeInterleaved(sessions, feeds, { rounds, runs: batch === 1 ? 100 : 10 });
}
const base = rows.float32!;
const results = Object.fromEntries(
  variants.map((v) => {
    const r = rows[v.name]!;
    const b64 = speedupPerRound(times[64]!, 'float32', v.name);
    return [
      v.name,
      {
        sizeBytes: r.bytes,
        sizeRatio: r.bytes / base.bytes,
        accuracy: r.accuracy,
        accuracyDropPt: (base.accuracy - r.accuracy) * 100,
        agreement: r.agreement,
        kernels: r.kernels,
        batch1Ms: median(times[1]![v.name]!),
        batch64Ms: median(times[64]![v.name]!),
        // Medians of per-round ratios (each round times every variant back to back); min–max says how noisy it was.
        speedupBatch1: speedupPerRound(times[1]!, 'float32', v.name).median,
        speedupBatch64: b64.median,
        speedupBatch64PerRound: b64,
      },
    ];
  }),
);
const report = {
  command: `flock /tmp/caliper-bench.lock nice -n 5 node --import tsx bench/quantize-cnn.ts --model ${MODEL} --rounds ${rounds}`,
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    gpu: 'none',
    intraOpThreads: 1,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
    uptimeBefore,
    uptimeAfter: uptime(),
  },
  date: new Date().toISOString(),
  rounds,
  model:
    'conv3x3x32-relu-maxpool-conv3x3x64-relu-maxpool-fc256-relu-fc10, trained by bench/train-fashion-cnn.py (python3-torch, 60000 train images)',
  modelFile: MODEL,
  results,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/quantize-cnn.json', `${JSON.stringify(report, null, 2)}\n`);
console.log(`uptime before: ${uptimeBefore}; after: ${report.machine.uptimeAfter}`);
console.log(
  '| variant | size × | t10k accuracy | drop (pt) | agreement | b=1 ms | b=64 ms | speedup b=1 | speedup b=64 (per-round min–max) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  console.log(
    `| ${name} | ${r.sizeRatio.toFixed(3)} | ${(r.accuracy * 100).toFixed(2)}% | ${r.accuracyDropPt.toFixed(2)} | ${(r.agreement * 100).toFixed(2)}% | ${r.batch1Ms.toFixed(3)} | ${r.batch64Ms.toFixed(2)} | ${r.speedupBatch1.toFixed(2)}× | ${r.speedupBatch64.toFixed(2)}× (${r.speedupBatch64PerRound.min.toFixed(2)}–${r.speedupBatch64PerRound.max.toFixed(2)}) |`,
  );
}
