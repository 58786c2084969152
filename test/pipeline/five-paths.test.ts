import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocalBatch, scorerFor, silentProgress } from '../../src/batch/batch-runner.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { openRowSource } from '../../src/batch/io/batch-input.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { PIPELINE_STAGES } from '../../src/pipeline/stage-timings.ts';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { FRAUD_EXAMPLE, planBatchJob, request as batchRequest, tempRoot } from '../batch/batch-fixtures.ts';

/**
 * One transaction through the five ways in: /predict, v2 REST JSON, v2 REST binary, gRPC and caliper batch (its
 * row path and its columnar path). The same stage list serves them all, so they answer the same probability and
 * name their stages from the same list, in its order: rows in at validate and out after postprocess, tensors in at
 * validate and out after inference.
 */

const transaction = { transaction_amount: 5000, merchant_category: 'jewelry', time_since_last_txn: 3 };
const root = tempRoot('five-paths');
let server: RunningServer;
let modelDir: string;
let served: ModelVersion;
let features: number[];

const stageNames = (serverTiming: string): string[] =>
  serverTiming
    .split(',')
    .map((entry) => entry.trim().split(';')[0]!)
    .filter((name) => name !== 'total');

const fp32 = (values: readonly number[]): Buffer => {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
};

beforeAll(async () => {
  // The fraud example's version 1 without its response cache, so every path runs the model.
  modelDir = join(root.dir, 'fraud_detector');
  mkdirSync(join(modelDir, '1'), { recursive: true });
  const yaml = readFileSync(join(FRAUD_EXAMPLE, 'model.yaml'), 'utf8').replace(/^cache:.*$/m, '');
  writeFileSync(join(modelDir, 'model.yaml'), yaml);
  copyFileSync(join(FRAUD_EXAMPLE, '1', 'model.onnx'), join(modelDir, '1', 'model.onnx'));
  server = await startServing({ paths: [modelDir], port: 0, grpcPort: 0, logger: pino({ level: 'silent' }) });
  served = server.repository.version('fraud_detector');
  expect(served.cache).toBeUndefined();
  const row = served.schema.validate(transaction);
  features = [...(served.preprocessor.run([row], () => '').features!.data as Float32Array)];
});

afterAll(async () => {
  await server?.close();
  root.remove();
});

interface PathAnswer {
  probability: number;
  stages: string[];
}

async function viaPredict(): Promise<PathAnswer> {
  const response = await fetch(`${server.url}/models/fraud_detector/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(transaction),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { fraud_probability: number };
  return { probability: body.fraud_probability, stages: stageNames(response.headers.get('server-timing')!) };
}

async function viaV2Json(): Promise<PathAnswer> {
  const response = await fetch(`${server.url}/v2/models/fraud_detector/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, features.length], data: features }],
    }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { outputs: { name: string; data: number[] }[] };
  const output = body.outputs.find((o) => o.name === 'fraud_probability')!;
  return { probability: output.data[0]!, stages: stageNames(response.headers.get('server-timing')!) };
}

async function viaV2Binary(): Promise<PathAnswer> {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: 'features',
          datatype: 'FP32',
          shape: [1, features.length],
          parameters: { binary_data_size: 4 * features.length },
        },
      ],
      outputs: [{ name: 'fraud_probability', parameters: { binary_data: true } }],
    }),
  );
  const response = await fetch(`${server.url}/v2/models/fraud_detector/infer`, {
    method: 'POST',
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.byteLength),
    },
    body: new Uint8Array(Buffer.concat([header, fp32(features)])),
  });
  expect(response.status).toBe(200);
  const bytes = Buffer.from(await response.arrayBuffer());
  const length = Number(response.headers.get('inference-header-content-length'));
  expect(length).toBeGreaterThan(0);
  return { probability: bytes.readFloatLE(length), stages: stageNames(response.headers.get('server-timing')!) };
}

async function viaGrpc(): Promise<PathAnswer> {
  const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true });
  const Service = (loadPackageDefinition(definition).inference as Record<string, unknown>).GRPCInferenceService as new (
    address: string,
    creds: ReturnType<typeof credentials.createInsecure>,
  ) => Client & Record<string, (...args: unknown[]) => { on(event: string, listener: (m: Metadata) => void): void }>;
  const client = new Service(`127.0.0.1:${server.grpc!.port}`, credentials.createInsecure());
  try {
    let timing = '';
    const response = await new Promise<{ raw_output_contents: Buffer[]; outputs: { name: string }[] }>(
      (resolve, reject) => {
        const call = client.ModelInfer!(
          {
            model_name: 'fraud_detector',
            inputs: [{ name: 'features', datatype: 'FP32', shape: [1, features.length] }],
            raw_input_contents: [fp32(features)],
          },
          new Metadata(),
          (error: ServiceError | null, answer: { raw_output_contents: Buffer[]; outputs: { name: string }[] }) =>
            error ? reject(error) : resolve(answer),
        );
        call.on('metadata', (metadata: Metadata) => {
          timing = String(metadata.get('server-timing')[0] ?? '');
        });
      },
    );
    const index = response.outputs.findIndex((o) => o.name === 'fraud_probability');
    return { probability: response.raw_output_contents[index]!.readFloatLE(0), stages: stageNames(timing) };
  } finally {
    client.close();
  }
}

async function viaBatch(rowPath: boolean): Promise<PathAnswer> {
  const input = join(root.dir, `one-${rowPath ? 'row' : 'columnar'}.jsonl`);
  const output = join(root.dir, `scored-${rowPath ? 'row' : 'columnar'}.jsonl`);
  writeFileSync(input, `${JSON.stringify(transaction)}\n`);
  const version = await loadBatchModel(modelDir);
  try {
    const spec = await planBatchJob(version, batchRequest(modelDir, input, output));
    await runLocalBatch(version, spec, silentProgress, { rowPath });
    const scored = JSON.parse(readFileSync(output, 'utf8').trim()) as { fraud_probability: number };
    // The row path's stages, as the scorer caliper batch uses reports them for this row.
    const source = await openRowSource(spec.inputs[0]!, { start: 0, end: Infinity });
    try {
      const batch = await source.next(1);
      const timings = (await scorerFor(version, spec, source, input).score(batch!)).timings!;
      return { probability: scored.fraud_probability, stages: PIPELINE_STAGES.filter((s) => timings[s] !== undefined) };
    } finally {
      await source.close();
    }
  } finally {
    await version.unload();
  }
}

describe('one stage list behind every protocol', () => {
  it('answers the same transaction with the same number and the same stage names through all five paths', async () => {
    const predict = await viaPredict();
    const v2Json = await viaV2Json();
    const v2Binary = await viaV2Binary();
    const grpc = await viaGrpc();
    const batchRows = await viaBatch(true);
    const batchColumnar = await viaBatch(false);

    // The same number: /predict's answer is the model's float32 output, as every other path returns it.
    const expected = Math.fround(predict.probability);
    for (const [path, answer] of Object.entries({ v2Json, v2Binary, grpc, batchRows, batchColumnar }))
      expect(Math.fround(answer.probability), path).toBe(expected);

    // The same stage names: rows in at validate and out after postprocess; tensors skip the row stages.
    const rowStages = ['validate', 'preprocess', 'queue', 'inference', 'postprocess'];
    expect(predict.stages).toEqual(rowStages);
    expect(batchRows.stages).toEqual(rowStages);
    const tensorStages = rowStages.filter((s) => s !== 'preprocess' && s !== 'postprocess');
    for (const [path, answer] of Object.entries({ v2Json, v2Binary, grpc }))
      expect(answer.stages, path).toEqual(tensorStages);
    for (const answer of [predict, v2Json, v2Binary, grpc, batchRows])
      expect(answer.stages).toEqual(PIPELINE_STAGES.filter((s) => answer.stages.includes(s)));
  });
});
