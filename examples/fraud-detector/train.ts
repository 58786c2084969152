/*
 * Trains the fraud-detector example on synthetic transactions (fixed seed) and writes
 * 1/model.onnx, model.yaml and sample-request.json next to this script.
 *   npx tsx examples/fraud-detector/train.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { exportMlp } from '../training/mlp-export.ts';
import { Mlp, SeededRandom, shuffledIndices } from '../training/mlp-trainer.ts';

export const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fuel', 'restaurant', 'jewelry', 'online'] as const;
const TYPICAL_AMOUNT_LOG = [3.4, 5.0, 5.6, 3.8, 3.7, 3.3, 6.0, 4.2];
const CATEGORY_RISK = [-0.5, 1.4, 0.4, 1.1, -0.6, -0.5, 1.9, 1.0];

export interface Transaction { transaction_amount: number; merchant_category: string; time_since_last_txn: number }

/** The model's feature vector, exactly as model.yaml's preprocess builds it. */
export function features(t: Transaction, out: Float32Array, offset: number): void {
  out[offset] = Math.log1p(t.transaction_amount);
  out[offset + 1] = Math.log1p(t.time_since_last_txn) / 10;
  for (let c = 0; c < CATEGORIES.length; c++) out[offset + 2 + c] = CATEGORIES[c] === t.merchant_category ? 1 : 0;
}

/** Synthetic transactions: fraud is likelier for large amounts in risky categories soon after the previous one. */
export function syntheticTransactions(count: number, seed: number): { transactions: Transaction[]; labels: Uint8Array } {
  const random = new SeededRandom(seed);
  const transactions: Transaction[] = [];
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = random.int(CATEGORIES.length);
    const amount = Math.round(Math.exp(TYPICAL_AMOUNT_LOG[c]! + random.normal()) * 100) / 100;
    const seconds = Math.round(Math.exp(8 + 1.6 * random.normal()));
    const logit = -4.2 + 1.1 * (Math.log1p(amount) - 4.3) - 0.6 * (Math.log1p(seconds) - 8) + CATEGORY_RISK[c]!;
    labels[i] = random.next() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    transactions.push({ transaction_amount: amount, merchant_category: CATEGORIES[c]!, time_since_last_txn: seconds });
  }
  return { transactions, labels };
}

const MODEL_YAML = `# Fraud detector: the reference scenario. Built by examples/fraud-detector/train.ts.
name: fraud_detector
description: Probability that a card transaction is fraudulent
inputs:
  transaction_amount: { type: number, minimum: 0, description: amount in the card's currency }
  merchant_category: { type: string, enum: [${CATEGORIES.join(', ')}] }
  time_since_last_txn: { type: number, minimum: 0, description: seconds since the card's previous transaction }
preprocess:
  tensor: features
  columns:
    - { log1p: transaction_amount }
    - { log1p: time_since_last_txn, divide: 10 }
    - { one_hot: merchant_category }
postprocess:
  fraud_probability: { output: fraud_probability, index: 0 }
  is_fraud: { of: fraud_probability, threshold: 0.7 }
instances: { count: 1, kind: in_thread, intra_op_threads: 1 }
batching: { max_batch_size: 64, preferred_batch_sizes: [8, 16, 32], max_queue_delay_us: 500, max_queue_size: 10000, timeout_ms: 1000 }
cache: { max_entries: 10000, ttl_s: 60 }
sla: { p99_ms: 50 }
`;

function main(): void {
  const here = dirname(fileURLToPath(import.meta.url));
  const train = syntheticTransactions(40_000, 7);
  const test = syntheticTransactions(10_000, 8);
  const encode = (ts: Transaction[]): Float32Array => {
    const x = new Float32Array(ts.length * 10);
    ts.forEach((t, i) => features(t, x, i * 10));
    return x;
  };
  const xTrain = encode(train.transactions);
  const xTest = encode(test.transactions);
  const random = new SeededRandom(42);
  const mlp = new Mlp([10, 16, 1], 'sigmoid', random);
  const batch = 128;
  for (let epoch = 0; epoch < 15; epoch++) {
    const order = shuffledIndices(train.labels.length, random);
    let loss = 0;
    let batches = 0;
    for (let start = 0; start + batch <= order.length; start += batch) {
      const x = new Float32Array(batch * 10);
      const y = new Uint8Array(batch);
      for (let k = 0; k < batch; k++) {
        const i = order[start + k]!;
        x.set(xTrain.subarray(i * 10, i * 10 + 10), k * 10);
        y[k] = train.labels[i]!;
      }
      loss += mlp.trainBatch(x, y, batch, 0.003);
      batches++;
    }
    const p = mlp.predict(xTest, test.labels.length);
    let correct = 0;
    p.forEach((v, i) => { if ((v > 0.5 ? 1 : 0) === test.labels[i]) correct++; });
    console.log(`epoch ${epoch + 1}: loss ${(loss / batches).toFixed(4)}, test accuracy ${(correct / p.length * 100).toFixed(2)}%`);
  }
  mkdirSync(join(here, '1'), { recursive: true });
  writeModelFile(join(here, '1', 'model.onnx'), exportMlp(mlp, { input: 'features', output: 'fraud_probability', graph: 'fraud_detector' }));
  writeFileSync(join(here, 'model.yaml'), MODEL_YAML);
  writeFileSync(join(here, 'sample-request.json'), `${JSON.stringify({ transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 })}\n`);
  console.log(`wrote ${join(here, '1', 'model.onnx')}, model.yaml and sample-request.json`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
