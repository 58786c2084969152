import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRequestData, RequestPipeline } from '../../src/optimize/datasets/request-data.ts';
import { resolveModelSource } from '../../src/optimize/model-source.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { writeModelFile } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import { quantize } from '../../src/optimize/quantize/quantizer.ts';
import { distill } from '../../src/optimize/distill/distiller.ts';
import { syntheticTransactions } from '../../examples/fraud-detector/train.ts';
import { decodeModel } from '../../src/optimize/onnx/model-io.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';

const FLOAT = TensorDataType.FLOAT;
const work = mkdtempSync(join(tmpdir(), 'caliper-optimize-pipeline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * A two-input classifier: `numeric` [N, 2] (log1p amount, hours / 24) and `kind` [N, 3] (one-hot), concatenated;
 * class "high" when log1p(amount) + 2·[kind = c] > 4. With `outlier`, an unused hidden unit carries a ±1000
 * weight: harmless in float, but a per-tensor int8 scale of 1000/127 rounds every real weight to zero.
 */
function scoreModel(outlier: boolean) {
  const b = new GraphBuilder('score', 17);
  b.input({ name: 'numeric', elemType: FLOAT, shape: ['N', 2] });
  b.input({ name: 'kind', elemType: FLOAT, shape: ['N', 3] });
  const hidden = 16;
  const w1 = new Float32Array(5 * hidden);
  const bias = new Float32Array(hidden);
  // h0 = relu(x - 4), h1 = relu(4 - x) with x = log1p(amount) + 2·c; h2.. small weights on hours.
  w1[0 * hidden + 0] = 1;
  w1[4 * hidden + 0] = 2;
  bias[0] = -4;
  w1[0 * hidden + 1] = -1;
  w1[4 * hidden + 1] = -2;
  bias[1] = 4;
  for (let j = 3; j < hidden; j++) w1[1 * hidden + j] = 0.01 * j;
  const w2 = new Float32Array(hidden * 2);
  w2[0 * 2 + 1] = 1;
  w2[1 * 2 + 0] = 1;
  if (outlier) {
    w2[2 * 2 + 0] = 1000;
    w2[2 * 2 + 1] = -1000;
  }
  const [x] = b.node('Concat', ['numeric', 'kind'], { axis: 1 });
  const [m1] = b.node('MatMul', [x!, b.initializer(tensorFromArray('w1', [5, hidden], w1))]);
  const [a1] = b.node('Add', [m1!, b.initializer(tensorFromArray('b1', [hidden], bias))]);
  const [r1] = b.node('Relu', [a1!]);
  b.node('MatMul', [r1!, b.initializer(tensorFromArray('w2', [hidden, 2], w2))], {}, ['logits']);
  b.output({ name: 'logits', elemType: FLOAT, shape: ['N', 2] });
  return b.build();
}

const SCORE_YAML = `name: score
inputs:
  amount: { type: number, minimum: 0 }
  hours: { type: number, minimum: 0 }
  kind: { type: string, enum: [a, b, c] }
preprocess:
  tensors:
    - { tensor: numeric, columns: [{ log1p: amount }, { identity: hours, divide: 24 }] }
    - { tensor: kind, columns: [{ one_hot: kind }] }
postprocess:
  label: { output: logits, argmax: true, labels: [low, high] }
`;

/** Request rows with the class as a name ("low"/"high"), the way an application would log them. */
function scoreRows(count: number, seed: number): { amount: number; hours: number; kind: string; outcome: string }[] {
  let s = seed;
  const random = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  return Array.from({ length: count }, () => {
    const amount = Math.round((Math.exp(random() * 7) - 1) * 100) / 100;
    const kind = ['a', 'b', 'c'][Math.floor(random() * 3)]!;
    const hours = Math.round(random() * 48);
    return { amount, hours, kind, outcome: Math.log1p(amount) + (kind === 'c' ? 2 : 0) > 4 ? 'high' : 'low' };
  });
}

const folder = join(work, 'score');
mkdirSync(join(folder, '1'), { recursive: true });
mkdirSync(join(folder, '2'), { recursive: true });
writeFileSync(join(folder, 'model.yaml'), SCORE_YAML);
writeModelFile(join(folder, '1', 'model.onnx'), scoreModel(false));
writeModelFile(join(folder, '2', 'model.onnx'), scoreModel(true));
const rows = scoreRows(600, 5);
const csv = join(work, 'eval.csv');
writeFileSync(
  csv,
  `amount,hours,kind,outcome\n${rows.map((r) => `${r.amount},${r.hours},${r.kind},${r.outcome}`).join('\n')}\n`,
);
const jsonl = join(work, 'calibration.jsonl');
writeFileSync(
  jsonl,
  scoreRows(300, 11)
    .map((r) => JSON.stringify(r))
    .join('\n'),
);

async function requestData(path: string, version: number, purpose: string) {
  const source = await resolveModelSource(join(folder, String(version)));
  const pipeline = await RequestPipeline.open(source.config, source.version);
  try {
    return { source, data: await loadRequestData(path, pipeline, { purpose, label: 'outcome' }) };
  } finally {
    await pipeline.close();
  }
}

function caliper(...args: string[]) {
  const result = spawnSync(process.execPath, ['bin/caliper.js', 'quantize', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('optimization data through model.yaml', () => {
  it("builds every input tensor from request rows with the model folder's preprocess, and maps class names onto its labels", async () => {
    const { data } = await requestData(csv, 1, 'eval');
    expect(data.count).toBe(600);
    expect(Object.keys(data.inputs).sort()).toEqual(['kind', 'numeric']);
    expect(data.inputs.numeric!.dims).toEqual([600, 2]);
    expect(data.inputs.kind!.dims).toEqual([600, 3]);
    const first = rows[0]!;
    expect((data.inputs.numeric!.data as Float32Array)[0]).toBeCloseTo(Math.log1p(first.amount), 5);
    expect((data.inputs.numeric!.data as Float32Array)[1]).toBeCloseTo(first.hours / 24, 5);
    expect(Array.from((data.inputs.kind!.data as Float32Array).subarray(0, 3))).toEqual(
      ['a', 'b', 'c'].map((k) => (k === first.kind ? 1 : 0)),
    );
    expect(data.labelNames).toEqual(['low', 'high']);
    expect(data.labels![0]).toBe(first.outcome === 'high' ? 1 : 0);
  });

  it('names the file, row and field of a row the request schema rejects', async () => {
    const bad = join(work, 'bad.csv');
    writeFileSync(bad, 'amount,hours,kind,outcome\n5,1,a,low\n7,2,z,high\n');
    await expect(requestData(bad, 1, 'calibration')).rejects.toThrow(
      /calibration data .*bad\.csv row 2: kind: unknown category "z" \(expected one of a, b, c\)/,
    );
    const noLabel = join(work, 'nolabel.csv');
    writeFileSync(noLabel, 'amount,hours,kind\n5,1,a\n');
    await expect(requestData(noLabel, 1, 'eval')).rejects.toThrow(/has no label column outcome/);
  });

  it('calibrates a two-input model (static INT8) on JSONL request rows and scores it on CSV request rows', async () => {
    const calibration = (await requestData(jsonl, 1, 'calibration')).data;
    const { source, data: evalData } = await requestData(csv, 1, 'eval');
    const { model, report } = await quantize(source.modelPath, {
      mode: 'static',
      calibration,
      eval: evalData,
      latencyBatchSizes: [],
    });
    const quantizedInputs = model.graph!.node!.filter((n) => n.opType === 'QuantizeLinear').map((n) => n.input![0]);
    expect(quantizedInputs).toEqual(expect.arrayContaining(['numeric', 'kind']));
    expect(report.accuracy!.samples).toBe(600);
    expect(report.accuracy!.before).toBe(1);
    expect(report.accuracy!.after).toBeGreaterThan(0.98);
    expect(report.guard.reasons.some((r) => r.startsWith('accuracy'))).toBe(false);
  });
});

describe('the accuracy guard', () => {
  it('refuses a model that loses more than --max-drop and says why; --force writes it', async () => {
    const { source, data } = await requestData(csv, 2, 'eval');
    const refused = join(work, 'refused.onnx');
    const { report } = await quantize(source.modelPath, {
      mode: 'dynamic',
      eval: data,
      latencyBatchSizes: [],
      output: refused,
    });
    expect(report.accuracy!.before).toBe(1);
    expect(report.accuracy!.after).toBeLessThan(0.9);
    expect(report.guard.passed).toBe(false);
    expect(report.guard.written).toBe(false);
    expect(report.guard.reasons[0]).toMatch(
      /^accuracy drops \d+\.\d\d pt \(100\.00% → \d+\.\d\d%\), more than --max-drop 1 pt$/,
    );
    expect(existsSync(refused)).toBe(false);

    const forced = join(work, 'forced.onnx');
    const again = await quantize(source.modelPath, {
      mode: 'dynamic',
      eval: data,
      latencyBatchSizes: [],
      output: forced,
      force: true,
    });
    expect(again.report.guard).toMatchObject({ passed: false, forced: true, written: true });
    expect(existsSync(forced)).toBe(true);

    // Leaving the layer with the outlier in float keeps the accuracy: the guard then lets it through.
    const kept = await quantize(source.modelPath, {
      mode: 'dynamic',
      exclude: ['MatMul_4'],
      eval: data,
      latencyBatchSizes: [],
      maxDrop: 1,
    });
    expect(kept.report.accuracy!.after).toBeGreaterThan(0.98);
    expect(kept.report.guard.reasons.filter((r) => r.startsWith('accuracy'))).toEqual([]);
  });

  it('refuses a larger or slower model, and scores regression outputs by MAE against the allowance in per cent', async () => {
    const { source, data } = await requestData(csv, 1, 'eval');
    const targets = Float64Array.from(data.labels!, (l) => l * 3 + 0.5);
    const { report } = await quantize(source.modelPath, {
      mode: 'static',
      calibration: data,
      eval: { ...data, labels: undefined, targets },
      latencyBatchSizes: [64],
    });
    expect(report.accuracy).toBeUndefined();
    expect(report.regression!.samples).toBe(600);
    expect(report.regression!.before.mae).toBeGreaterThan(0);
    // QDQ pairs around a 5x16 model outweigh its int8 weights.
    expect(report.size.afterBytes).toBeGreaterThan(report.size.beforeBytes);
    expect(report.guard.reasons).toContain(
      `larger: ${report.size.afterBytes} bytes against ${report.size.beforeBytes} (${(report.size.afterBytes / report.size.beforeBytes).toFixed(2)}× the size)`,
    );
    const l = report.latency[0]!;
    expect(report.guard.reasons.some((r) => r.startsWith('slower at batch 64'))).toBe(l.afterMs > l.beforeMs * 1.05);
  });
});

describe('caliper quantize --model (CLI)', () => {
  it('exits non-zero without writing when the guard fails, and with --force --register creates a registry version carrying the report', async () => {
    const out = join(work, 'cli.onnx');
    const registry = join(work, 'registry');
    const refused = caliper(
      '--model',
      join(folder, '2'),
      '--mode',
      'dynamic',
      '--eval',
      csv,
      '--label',
      'outcome',
      '--no-latency',
      '-o',
      out,
      '--register',
      'score_int8',
      '--registry',
      registry,
    );
    expect(refused.status).toBe(1);
    expect(refused.stdout).toMatch(/guard {11}FAILED: accuracy drops/);
    expect(refused.stdout).toMatch(/not written \(pass --force to write it anyway\)/);
    expect(refused.stderr).toMatch(
      /caliper: .*cli\.onnx not written: accuracy drops .* \(pass --force to write it anyway\)/,
    );
    expect(existsSync(out)).toBe(false);

    const forced = caliper(
      '--model',
      join(folder, '1'),
      '--mode',
      'dynamic',
      '--eval',
      csv,
      '--label',
      'outcome',
      '--no-latency',
      '-o',
      out,
      '--register',
      'score_int8',
      '--registry',
      registry,
      '--force',
    );
    expect(forced.stderr).not.toMatch(/caliper:/);
    expect(forced.status).toBe(0);
    expect(forced.stdout).toMatch(/registered models:\/score_int8\/1/);
    const home = ModelRegistry.open(registry);
    try {
      const version = await home.version('score_int8', 1);
      expect(version.tags).toEqual({ optimized_from: join(folder, '1'), mode: 'dynamic' });
      expect(version.metrics.accuracy_before).toBe(1);
      expect(version.metrics.accuracy_after).toBeGreaterThan(0.98);
      expect(version.metrics.size_after_bytes).toBeGreaterThan(0);
      expect(version.signature.inputs.map((i) => i.name).sort()).toEqual(['kind', 'numeric']);
    } finally {
      await home.close();
    }
  });
});

describe('distillation through model.yaml', () => {
  it('distils the fraud example (one probability per row) from request rows into a student that answers in the same [N, 1] form', async () => {
    const { transactions, labels } = syntheticTransactions(600, 21);
    const path = join(work, 'fraud-train.csv');
    writeFileSync(
      path,
      `transaction_amount,merchant_category,time_since_last_txn,is_fraud\n${transactions.map((t, i) => `${t.transaction_amount},${t.merchant_category},${t.time_since_last_txn},${labels[i]}`).join('\n')}\n`,
    );
    const source = await resolveModelSource('examples/fraud-detector/1');
    const pipeline = await RequestPipeline.open(source.config, source.version);
    const train = await loadRequestData(path, pipeline, { purpose: 'training', label: 'is_fraud' }).finally(() =>
      pipeline.close(),
    );
    expect(train.inputs.features!.dims).toEqual([600, 10]);
    const { bytes, report } = await distill({
      teacher: source.modelPath,
      train,
      student: 'mlp:8',
      epochs: 2,
      latencyBatchSizes: [],
    });
    const student = decodeModel(bytes);
    expect(student.graph!.output!.map((o) => o.name)).toEqual(['fraud_probability']);
    expect(report.data.classes).toBe(2);
    expect(report.teacher.accuracy).toBeGreaterThan(0.8);
    expect(report.distilled.accuracy).toBeGreaterThan(0.6);
    expect(report.warnings.join(' ')).toMatch(/one probability per row/);
  });
});
