import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import { GrpcInferenceClient } from '../../src/client/grpc-client.ts';
import { RestInferenceClient } from '../../src/client/rest-client.ts';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { planBatchJob, query, request, tempRoot } from '../batch/batch-fixtures.ts';
import { TempModelRepository } from '../support/temp-models.ts';

/** x [N, 3] → logy = Log(x) (NaN below 0, -Infinity at 0) and inv = Reciprocal(x) (+Infinity at 0). */
function logModel(): ModelProto {
  const g = new GraphBuilder('nonfinite', 17);
  g.input({ name: 'x', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  g.node('Log', ['x'], {}, ['logy']);
  g.node('Reciprocal', ['x'], {}, ['inv']);
  g.output({ name: 'logy', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  g.output({ name: 'inv', elemType: TensorDataType.FLOAT, shape: ['N', 3] });
  return g.build();
}

const config = {
  name: 'nonfinite',
  inputs: { x: { type: 'array', items: 'number', length: 3 } },
  preprocess: { tensor: 'x', columns: [{ identity: 'x' }] },
  postprocess: {
    log: { output: 'logy' },
    first: { output: 'logy', index: 0 },
    low: { output: 'logy', index: 1 },
    probs: { output: 'logy', softmax: true },
    best: { output: 'logy', argmax: true },
    top: { output: 'logy', top_k: 3 },
    inv_probs: { output: 'inv', softmax: true },
    above: { output: 'inv', index: 1, threshold: 0.5 },
    undecided: { output: 'logy', index: 0, threshold: 0.5 },
    sig: { output: 'inv', sigmoid: true },
  },
  batching: { max_batch_size: 8, max_queue_delay_us: 100 },
  cache: { max_entries: 100, ttl_s: 60 },
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
};

/** x = [-1, 0, 1]: logy = [NaN, -Infinity, 0], inv = [-1, +Infinity, 1]. */
const X = [-1, 0, 1];
const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));
const EXPECTED = {
  log: [null, null, 0],
  first: null,
  low: null,
  probs: [null, null, null],
  best: 2,
  top: [
    { label: 2, score: 0 },
    { label: 1, score: null },
    { label: 0, score: null },
  ],
  inv_probs: [0, 1, 0],
  above: true,
  undecided: null,
  sig: [sigmoid(-1), 1, sigmoid(1)],
};

let repo: TempModelRepository;
let server: RunningServer;
const root = tempRoot('nonfinite');

beforeAll(async () => {
  repo = new TempModelRepository();
  repo.add('nonfinite', config, logModel());
  server = await startServing({ paths: [repo.dir], port: 0, grpcPort: 0, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await server?.close();
  repo?.remove();
  root.remove();
});

async function predict(body: unknown): Promise<{ status: number; json: Record<string, unknown>; timing: string }> {
  const response = await fetch(`${server.url}/models/nonfinite/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    json: (await response.json()) as Record<string, unknown>,
    timing: response.headers.get('server-timing') ?? '',
  };
}

const withoutLatency = (json: Record<string, unknown>): Record<string, unknown> => {
  const { latency_ms: _latency, model_name: _name, model_version: _version, ...rest } = json;
  return rest;
};

describe('non-finite model outputs', () => {
  it('/predict writes NaN and ±Infinity as null, and every postprocess operation has a defined answer', async () => {
    const first = await predict({ x: X });
    expect(first.status).toBe(200);
    expect(withoutLatency(first.json)).toEqual(EXPECTED);
    const many = await predict({ instances: [{ x: X }, { x: [1, 2, 4] }] });
    expect(many.status).toBe(200);
    const predictions = many.json.predictions as Record<string, unknown>[];
    expect(withoutLatency(predictions[0]!)).toEqual(EXPECTED);
    expect(predictions[1]).toMatchObject({ first: 0, best: 2, above: false });
  });

  it('the response cache answers exactly what the model answered the first time', async () => {
    const body = { x: [-1, 0, 1] };
    const fresh = await predict(body);
    const cached = await predict(body);
    expect(cached.timing).toMatch(/cache/);
    expect(cached.timing).not.toMatch(/inference/);
    expect(withoutLatency(cached.json)).toEqual(withoutLatency(fresh.json));
  });

  it('v2 JSON writes null; the binary extension and gRPC keep the exact values', async () => {
    const input = [{ name: 'x', datatype: 'FP32' as const, shape: [1, 3], data: Float32Array.from(X) }];
    const json = await new RestInferenceClient({ url: server.url, binary: false }).infer('nonfinite', input);
    expect([...(json.outputs.logy!.data as Float32Array)]).toEqual([NaN, NaN, 0]);
    const raw = await fetch(`${server.url}/v2/models/nonfinite/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: X }] }),
    });
    const body = (await raw.json()) as { outputs: { name: string; data: unknown[] }[] };
    expect(body.outputs.find((o) => o.name === 'logy')!.data).toEqual([null, null, 0]);
    expect(body.outputs.find((o) => o.name === 'inv')!.data).toEqual([-1, null, 1]);

    const binary = await new RestInferenceClient({ url: server.url, binary: true }).infer('nonfinite', input);
    expect([...(binary.outputs.logy!.data as Float32Array)]).toEqual([NaN, -Infinity, 0]);
    expect([...(binary.outputs.inv!.data as Float32Array)]).toEqual([-1, Infinity, 1]);
    const grpc = new GrpcInferenceClient({ address: `127.0.0.1:${server.grpc!.port}` });
    try {
      const answer = await grpc.infer('nonfinite', input);
      expect([...(answer.outputs.logy!.data as Float32Array)]).toEqual([NaN, -Infinity, 0]);
      expect([...(answer.outputs.inv!.data as Float32Array)]).toEqual([-1, Infinity, 1]);
    } finally {
      grpc.close();
    }
  });

  it('caliper batch spells them null in JSONL, NaN/Infinity/-Infinity in CSV cells, and keeps them exact in Parquet', async () => {
    const version = await loadBatchModel(join(repo.dir, 'nonfinite'));
    try {
      const input = join(root.dir, 'rows.jsonl');
      writeFileSync(input, `${JSON.stringify({ id: 1, x: X })}\n`);
      const run = async (format: 'jsonl' | 'csv' | 'parquet'): Promise<string> => {
        const output = join(root.dir, `out.${format}`);
        await runLocalBatch(
          version,
          await planBatchJob(version, request(join(repo.dir, 'nonfinite'), input, output, { format, keep: ['id'] })),
          silentProgress,
        );
        return output;
      };
      const jsonl = JSON.parse(readFileSync(await run('jsonl'), 'utf8').trim()) as Record<string, unknown>;
      expect(jsonl).toMatchObject({
        id: 1,
        log: [null, null, 0],
        first: null,
        low: null,
        best: 2,
        undecided: null,
        above: true,
      });
      const [header, line] = readFileSync(await run('csv'), 'utf8')
        .trim()
        .split('\n');
      const cells = Object.fromEntries(
        header!
          .split(',')
          .map((name, i) => [name, line!.match(/("[^"]*(?:""[^"]*)*"|[^,]*)(?:,|$)/g)![i]!.replace(/,$/, '')]),
      );
      expect(cells).toMatchObject({ first: 'NaN', low: '-Infinity', undecided: '', above: 'true' });
      const rows = await query(`SELECT isnan(first) AS nan, low, above FROM read_parquet('${await run('parquet')}')`);
      expect(rows).toEqual([{ nan: true, low: -Infinity, above: true }]);
    } finally {
      await version.unload();
    }
  });
});
