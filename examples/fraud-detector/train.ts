/*
 * Trains the fraud-detector example on synthetic transactions (fixed seed).
 *   npx tsx examples/fraud-detector/train.ts             version 2: 2/model.onnx, 2/model.yaml (with the
 *                                                        user features stage) and features/users.csv
 *   npx tsx examples/fraud-detector/train.ts --version 1 version 1: 1/model.onnx, model.yaml, sample-request.json
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { exportMlp } from '../training/mlp-export.ts';
import { Mlp, SeededRandom, shuffledIndices } from '../training/mlp-trainer.ts';

export const CATEGORIES = [
  'grocery',
  'electronics',
  'travel',
  'gaming',
  'fuel',
  'restaurant',
  'jewelry',
  'online',
] as const;
const TYPICAL_AMOUNT_LOG = [3.4, 5.0, 5.6, 3.8, 3.7, 3.3, 6.0, 4.2];
const CATEGORY_RISK = [-0.5, 1.4, 0.4, 1.1, -0.6, -0.5, 1.9, 1.0];

export interface Transaction {
  transaction_amount: number;
  merchant_category: string;
  time_since_last_txn: number;
}

/** The model's feature vector, exactly as model.yaml's preprocess builds it. */
export function features(t: Transaction, out: Float32Array, offset: number): void {
  out[offset] = Math.log1p(t.transaction_amount);
  out[offset + 1] = Math.log1p(t.time_since_last_txn) / 10;
  for (let c = 0; c < CATEGORIES.length; c++) out[offset + 2 + c] = CATEGORIES[c] === t.merchant_category ? 1 : 0;
}

/** Synthetic transactions: fraud is likelier for large amounts in risky categories soon after the previous one. */
export function syntheticTransactions(
  count: number,
  seed: number,
): { transactions: Transaction[]; labels: Uint8Array } {
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
batching: { max_batch_size: 64, preferred_batch_sizes: [4, 8, 16, 32], max_queue_delay_us: 500, max_queue_size: 10000, timeout_ms: 1000 }
cache: { max_entries: 10000, ttl_s: 60 }
sla: { p99_ms: 50 }
`;

function trainVersion1(here: string): void {
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
    p.forEach((v, i) => {
      if ((v > 0.5 ? 1 : 0) === test.labels[i]) correct++;
    });
    console.log(
      `epoch ${epoch + 1}: loss ${(loss / batches).toFixed(4)}, test accuracy ${((correct / p.length) * 100).toFixed(2)}%`,
    );
  }
  mkdirSync(join(here, '1'), { recursive: true });
  writeModelFile(
    join(here, '1', 'model.onnx'),
    exportMlp(mlp, { input: 'features', output: 'fraud_probability', graph: 'fraud_detector' }),
  );
  writeFileSync(join(here, 'model.yaml'), MODEL_YAML);
  writeFileSync(
    join(here, 'sample-request.json'),
    `${JSON.stringify({ transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 })}\n`,
  );
  console.log(`wrote ${join(here, '1', 'model.onnx')}, model.yaml and sample-request.json`);
}

// ---- Version 2: the same transaction plus per-user features looked up by user_id ----

export interface UserFeatures {
  user_id: string;
  user_txn_count: number;
  user_avg_amount: number;
}

/** Synthetic card holders: how many transactions they made and their average amount. */
export function syntheticUsers(count: number, seed: number): UserFeatures[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, (_, i) => ({
    user_id: `u${String(i + 1).padStart(4, '0')}`,
    user_txn_count: Math.max(1, Math.round(Math.exp(3 + random.normal()))),
    user_avg_amount: Math.round(Math.exp(4.2 + 0.8 * random.normal()) * 100) / 100,
  }));
}

/** model.yaml features defaults: a request without a known user is scored as in version 1. */
export const USER_DEFAULTS = { user_txn_count: 0, user_avg_amount: 0 } as const;

/**
 * Version 2's data: a quarter of the transactions carry no known user (features at their defaults,
 * labelled as in version 1); for the rest, spending far above the user's own average and a thin
 * history both raise the risk.
 */
export function syntheticUserTransactions(
  count: number,
  seed: number,
  users: readonly UserFeatures[],
): { transactions: Transaction[]; user: (UserFeatures | undefined)[]; labels: Uint8Array } {
  const random = new SeededRandom(seed);
  const base = syntheticTransactions(count, seed + 1000);
  const user: (UserFeatures | undefined)[] = [];
  const labels = new Uint8Array(count);
  base.transactions.forEach((t, i) => {
    if (random.next() < 0.25) {
      user.push(undefined);
      labels[i] = base.labels[i]!;
      return;
    }
    const u = users[random.int(users.length)]!;
    // A user's transactions mostly sit near their average amount; some are far off.
    t.transaction_amount = Math.round(Math.exp(Math.log(u.user_avg_amount) + 1.1 * random.normal()) * 100) / 100;
    const c = CATEGORIES.indexOf(t.merchant_category as (typeof CATEGORIES)[number]);
    const logit =
      -4.2 +
      0.4 * (Math.log1p(t.transaction_amount) - 4.3) -
      0.6 * (Math.log1p(t.time_since_last_txn) - 8) +
      CATEGORY_RISK[c]! +
      1.6 * (Math.log1p(t.transaction_amount) - Math.log1p(u.user_avg_amount)) -
      0.5 * (Math.log1p(u.user_txn_count) - 3);
    labels[i] = random.next() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    user.push(u);
  });
  return { transactions: base.transactions, user, labels };
}

/** Version 2's feature vector: version 1's ten, then log1p of the user's transaction count and average amount. */
export function userFeatures(t: Transaction, u: UserFeatures | undefined, out: Float32Array, offset: number): void {
  features(t, out, offset);
  out[offset + 10] = Math.log1p(u?.user_txn_count ?? USER_DEFAULTS.user_txn_count);
  out[offset + 11] = Math.log1p(u?.user_avg_amount ?? USER_DEFAULTS.user_avg_amount);
}

const MODEL_YAML_V2 = `# Fraud detector version 2: the transaction plus the card holder's history, looked up by user_id.
# Built by examples/fraud-detector/train.ts. user_id is optional: without it (or for an unknown user)
# the user features take their defaults and the answer is scored like version 1.
name: fraud_detector
description: Probability that a card transaction is fraudulent, given the card holder's history
inputs:
  transaction_amount: { type: number, minimum: 0, description: amount in the card's currency }
  merchant_category: { type: string, enum: [${CATEGORIES.join(', ')}] }
  time_since_last_txn: { type: number, minimum: 0, description: seconds since the card's previous transaction }
  user_id: { type: string, required: false, description: card holder; keys the user features }
features:
  store: memory
  source: features/users.csv
  key: "user:{user_id}"
  fields:
    user_txn_count: { type: integer, default: ${USER_DEFAULTS.user_txn_count} }
    user_avg_amount: { type: number, default: ${USER_DEFAULTS.user_avg_amount} }
  timeout_ms: 20
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
batching: { max_batch_size: 64, preferred_batch_sizes: [4, 8, 16, 32], max_queue_delay_us: 500, max_queue_size: 10000, timeout_ms: 1000 }
cache: { max_entries: 10000, ttl_s: 60 }
sla: { p99_ms: 50 }
`;

function trainVersion2(here: string): void {
  const users = syntheticUsers(500, 11);
  const train = syntheticUserTransactions(60_000, 7, users);
  const test = syntheticUserTransactions(10_000, 8, users);
  const width = 12;
  const encode = (data: typeof train): Float32Array => {
    const x = new Float32Array(data.transactions.length * width);
    data.transactions.forEach((t, i) => userFeatures(t, data.user[i], x, i * width));
    return x;
  };
  const xTrain = encode(train);
  const xTest = encode(test);
  const random = new SeededRandom(42);
  const mlp = new Mlp([width, 16, 1], 'sigmoid', random);
  const batch = 128;
  for (let epoch = 0; epoch < 20; epoch++) {
    const order = shuffledIndices(train.labels.length, random);
    let loss = 0;
    let batches = 0;
    for (let start = 0; start + batch <= order.length; start += batch) {
      const x = new Float32Array(batch * width);
      const y = new Uint8Array(batch);
      for (let k = 0; k < batch; k++) {
        const i = order[start + k]!;
        x.set(xTrain.subarray(i * width, (i + 1) * width), k * width);
        y[k] = train.labels[i]!;
      }
      loss += mlp.trainBatch(x, y, batch, 0.003);
      batches++;
    }
    const p = mlp.predict(xTest, test.labels.length);
    let correct = 0;
    p.forEach((v, i) => {
      if ((v > 0.5 ? 1 : 0) === test.labels[i]) correct++;
    });
    console.log(
      `epoch ${epoch + 1}: loss ${(loss / batches).toFixed(4)}, test accuracy ${((correct / p.length) * 100).toFixed(2)}%`,
    );
  }
  mkdirSync(join(here, '2'), { recursive: true });
  mkdirSync(join(here, 'features'), { recursive: true });
  writeModelFile(
    join(here, '2', 'model.onnx'),
    exportMlp(mlp, { input: 'features', output: 'fraud_probability', graph: 'fraud_detector' }),
  );
  writeFileSync(join(here, '2', 'model.yaml'), MODEL_YAML_V2);
  const csv = [
    'user_id,user_txn_count,user_avg_amount',
    ...users.map((u) => `${u.user_id},${u.user_txn_count},${u.user_avg_amount}`),
  ];
  writeFileSync(join(here, 'features', 'users.csv'), `${csv.join('\n')}\n`);
  writeFileSync(
    join(here, 'sample-request-user.json'),
    `${JSON.stringify({ transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310, user_id: 'u0042' })}\n`,
  );
  console.log(`wrote ${join(here, '2', 'model.onnx')}, 2/model.yaml, features/users.csv and sample-request-user.json`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const here = dirname(fileURLToPath(import.meta.url));
  const at = process.argv.indexOf('--version');
  if (at >= 0 && process.argv[at + 1] === '1') trainVersion1(here);
  else trainVersion2(here);
}
