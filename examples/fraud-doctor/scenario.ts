/*
 * The seed's story, end to end: a fraud service that misses its p99 budget because its feature source is slow and its
 * model is heavy, handed to `caliper doctor`, which finds both and meets the budget.
 *
 *   npx tsx examples/fraud-doctor/scenario.ts [--out DIR] [--p99-ms 50] [--rate 20] [--delay-ms 20] [-- doctor flags]
 *
 * It writes, under DIR (default a temporary folder): fraud_detector/ (model.yaml with a Redis feature store and
 * 1/model.onnx), requests.jsonl (transactions of known users) and eval.jsonl (labelled transactions); starts a private
 * redis-server with the users' features behind a proxy that holds each lookup --delay-ms (the slow source); and runs
 * `caliper doctor` on it with --feature-redis pointing at a Redis next to the server.
 *
 * The model: the transaction's 12 features (as examples/fraud-detector version 2 builds them) embedded at 768
 * positions, two dense layers of 896 and pooled — a stand-in for a sequence model, about 625 M multiply-adds a
 * request — added at 1e-3 to a logistic head holding the fraud rule the synthetic data follows, then a sigmoid.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { mulberry32 } from '../../src/system/seeded-random.ts';
import { CATEGORIES, syntheticTransactions } from '../fraud-detector/train.ts';
import { startSlowFeatureSource } from './slow-feature-source.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const USERS_CSV = join(here, '../fraud-detector/features/users.csv');
const FEATURES = 12;
const CATEGORY_RISK = [-0.5, 1.4, 0.4, 1.1, -0.6, -0.5, 1.9, 1.0];

/** The heavy fraud model: see the header. `positions` × `width` sets its cost. */
export function heavyFraudModel(positions = 768, width = 896): ModelProto {
  const random = mulberry32(11);
  const matrix = (rows: number, cols: number, scale: number): Float32Array =>
    Float32Array.from({ length: rows * cols }, () => (random() * 2 - 1) * scale);
  const b = new GraphBuilder('heavy_fraud', 17);
  const FLOAT = TensorDataType.FLOAT;
  const x = b.input({ name: 'features', elemType: FLOAT, shape: ['N', FEATURES] });
  const shape = b.initializer(tensorFromArray('spread_shape', [3], BigInt64Array.from([-1n, 1n, BigInt(FEATURES)])));
  const [spread] = b.node('Reshape', [x, shape]);
  const table = b.initializer(tensorFromArray('positions', [positions, FEATURES], matrix(positions, FEATURES, 1)));
  const [placed] = b.node('Add', [spread!, table]);
  const w1 = b.initializer(tensorFromArray('dense1', [FEATURES, width], matrix(FEATURES, width, 0.3)));
  const [h1] = b.node('MatMul', [placed!, w1]);
  const [r1] = b.node('Relu', [h1!]);
  const w2 = b.initializer(tensorFromArray('dense2', [width, width], matrix(width, width, 0.06)));
  const [h2] = b.node('MatMul', [r1!, w2]);
  const [r2] = b.node('Relu', [h2!]);
  const [pooled] = b.node('ReduceMean', [r2!], { axes: [1], keepdims: 0 });
  const w3 = b.initializer(tensorFromArray('dense3', [width, 1], matrix(width, 1, 0.1)));
  const [embedding] = b.node('MatMul', [pooled!, w3]);
  const small = b.initializer(tensorFromArray('embedding_scale', [], Float32Array.from([1e-3])));
  const [scaled] = b.node('Mul', [embedding!, small]);
  // The rule syntheticTransactions draws labels from: log-odds over log1p(amount), log1p(seconds)/10 and the category.
  const head = new Float32Array(FEATURES);
  head[0] = 1.1;
  head[1] = -6;
  CATEGORY_RISK.forEach((risk, c) => {
    head[2 + c] = risk;
  });
  const w = b.initializer(tensorFromArray('head', [FEATURES, 1], head));
  const bias = b.initializer(tensorFromArray('head_bias', [1], Float32Array.from([-4.13])));
  const [linear] = b.node('MatMul', [x, w]);
  const [withBias] = b.node('Add', [linear!, bias]);
  const [logit] = b.node('Add', [withBias!, scaled!]);
  b.node('Sigmoid', [logit!], {}, ['fraud_probability']);
  b.output({ name: 'fraud_probability', elemType: FLOAT, shape: ['N', 1] });
  return b.build();
}

const modelYaml = (
  featureUrl: string,
): string => `# The seed's fraud service: features from a slow store, a heavy model. Built by examples/fraud-doctor/scenario.ts.
name: fraud_detector
inputs:
  transaction_amount: { type: number, minimum: 0 }
  merchant_category: { type: string, enum: [${CATEGORIES.join(', ')}] }
  time_since_last_txn: { type: number, minimum: 0 }
  user_id: { type: string, required: false }
features:
  store: redis
  url: ${featureUrl}
  key: "user:{user_id}"
  fields:
    user_txn_count: { type: integer, default: 0 }
    user_avg_amount: { type: number, default: 0 }
  timeout_ms: 1000
  on_missing: defaults
preprocess:
  tensor: features
  columns:
    - { log1p: transaction_amount }
    - { log1p: time_since_last_txn, divide: 10 }
    - { one_hot: merchant_category }
    - { log1p: user_txn_count }
    - { log1p: user_avg_amount }
postprocess:
  fraud_probability: { output: fraud_probability, index: 0 }
  is_fraud: { of: fraud_probability, threshold: 0.7 }
instances: { count: 1, kind: in_thread, intra_op_threads: 1 }
sla: { p99_ms: 50 }
`;

/** Writes the model folder and the request/eval data; returns their paths. */
export function writeScenario(
  out: string,
  featureUrl: string,
): { modelDir: string; requests: string; evalData: string } {
  const modelDir = join(out, 'fraud_detector');
  mkdirSync(join(modelDir, '1'), { recursive: true });
  writeModelFile(join(modelDir, '1', 'model.onnx'), heavyFraudModel());
  writeFileSync(join(modelDir, 'model.yaml'), modelYaml(featureUrl));
  const user = (i: number): string => `u${String((i % 500) + 1).padStart(4, '0')}`;
  const requests = syntheticTransactions(5000, 21).transactions.map((t, i) => ({ ...t, user_id: user(i) }));
  const evalSet = syntheticTransactions(400, 22);
  const requestsFile = join(out, 'requests.jsonl');
  const evalFile = join(out, 'eval.jsonl');
  writeFileSync(requestsFile, `${requests.map((r) => JSON.stringify(r)).join('\n')}\n`);
  writeFileSync(
    evalFile,
    `${evalSet.transactions.map((t, i) => JSON.stringify({ ...t, user_id: user(i), is_fraud: evalSet.labels[i] })).join('\n')}\n`,
  );
  return { modelDir, requests: requestsFile, evalData: evalFile };
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = option('--out', mkdtempSync(join(tmpdir(), 'caliper-fraud-doctor-')));
  const source = await startSlowFeatureSource(USERS_CSV, Number(option('--delay-ms', '20')));
  try {
    const files = writeScenario(out, source.slowUrl);
    const extra = process.argv.includes('--') ? process.argv.slice(process.argv.indexOf('--') + 1) : [];
    const args = [
      join(here, '../../bin/caliper.js'),
      'doctor',
      '--model',
      files.modelDir,
      '--p99-ms',
      option('--p99-ms', '50'),
      '--rate',
      option('--rate', '20'),
      '--data',
      files.requests,
      '--eval',
      files.evalData,
      '--label',
      'is_fraud',
      '--feature-redis',
      source.nearUrl,
      ...extra,
    ];
    process.stderr.write(`caliper ${args.slice(1).join(' ')}\n`);
    const code = await new Promise<number | null>((resolve) => {
      spawn(process.execPath, args, { stdio: 'inherit' }).once('exit', resolve);
    });
    process.exitCode = code ?? 1;
  } finally {
    await source.stop();
  }
}
