import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  type Client,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

const example = join(import.meta.dirname, '../../examples/fraud-detector');
const transaction = { transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 300 };
let root: string;
let server: RunningServer;

type InferenceClient = Client &
  Record<
    string,
    (
      request: object,
      metadata: Metadata,
      options: object,
      callback: (error: ServiceError | null, response: unknown) => void,
    ) => ClientUnaryCall
  >;

interface Stats {
  inference_stats: Record<string, { count: number }>;
  batch_stats: { batch_size: number; compute_infer: { count: number } }[];
}

async function statsOf(name: string): Promise<Stats> {
  const body = (await (await fetch(`${server.url}/v2/models/${name}/stats`)).json()) as { model_stats: Stats[] };
  return body.model_stats[0]!;
}

const rowsRun = (stats: Stats): number =>
  stats.batch_stats.reduce((sum, b) => sum + b.batch_size * b.compute_infer.count, 0);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'caliper-cancel-'));
  // A queue delay far longer than inference keeps every request queued until the batch leaves.
  for (const name of ['http_queue', 'grpc_queue']) {
    const dir = join(root, name);
    mkdirSync(join(dir, '1'), { recursive: true });
    cpSync(join(example, '1', 'model.onnx'), join(dir, '1', 'model.onnx'));
    const yaml = readFileSync(join(example, 'model.yaml'), 'utf8')
      .replace(/^name: .*$/m, `name: ${name}`)
      .replace(/^(batching|cache|sla):.*$/gm, '');
    writeFileSync(
      join(dir, 'model.yaml'),
      `${yaml}\nbatching: { max_batch_size: 64, max_queue_delay_us: 400000, timeout_ms: 10000 }\n`,
    );
  }
  server = await startServing({ paths: [root], port: 0, grpcPort: 0, logger: quietLogger() });
});

afterAll(async () => {
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('a request whose client left while it was queued is dropped before it runs', () => {
  it('HTTP: 30 clients that close their sockets are not run; the patient client is; all 30 are counted as cancelled', async () => {
    const body = JSON.stringify(transaction);
    const url = new URL(server.url);
    const sockets = await Promise.all(
      Array.from(
        { length: 30 },
        () =>
          new Promise<ReturnType<typeof connect>>((resolve) => {
            const socket = connect(Number(url.port), url.hostname, () => {
              socket.write(
                `POST /models/http_queue/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
              );
              resolve(socket);
            });
            socket.on('error', () => {});
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    for (const socket of sockets) socket.destroy();
    const patient = await fetch(`${server.url}/models/http_queue/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(patient.status).toBe(200);

    const stats = await statsOf('http_queue');
    expect(rowsRun(stats)).toBe(1);
    expect(stats.inference_stats.cancelled!.count).toBe(30);
    expect(stats.inference_stats.success!.count).toBe(1);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(
      /caliper_requests_total\{model="http_queue",version="1",protocol="predict",outcome="cancelled",code="CALIPER_CANCELLED"\} 30/,
    );
  });

  it('gRPC: cancelled calls are not run; the patient call is', async () => {
    const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(definition) as unknown as {
      inference: {
        GRPCInferenceService: new (
          address: string,
          creds: ReturnType<typeof credentials.createInsecure>,
        ) => InferenceClient;
      };
    };
    const client = new pkg.inference.GRPCInferenceService(
      `127.0.0.1:${server.grpc!.port}`,
      credentials.createInsecure(),
    );
    const request = {
      model_name: 'grpc_queue',
      inputs: [
        {
          name: 'features',
          datatype: 'FP32',
          shape: [1, 10],
          contents: { fp32_contents: [Math.log1p(120), Math.log1p(300) / 10, 0, 0, 1, 0, 0, 0, 0, 0] },
        },
      ],
    };
    const infer = (): { call: ClientUnaryCall; done: Promise<ServiceError | null> } => {
      let call!: ClientUnaryCall;
      const done = new Promise<ServiceError | null>((resolve) => {
        call = client.ModelInfer!(request, new Metadata(), {}, (error) => resolve(error));
      });
      return { call, done };
    };
    try {
      // The channel is connected first, so the calls reach the server before they are cancelled.
      await new Promise<void>((resolve, reject) =>
        client.ServerLive!({}, new Metadata(), {}, (error) => (error ? reject(error) : resolve())),
      );
      const leaving = Array.from({ length: 10 }, infer);
      await new Promise((r) => setTimeout(r, 100));
      for (const { call } of leaving) call.cancel();
      const patient = infer();
      expect(await patient.done).toBeNull();
      await Promise.all(leaving.map((l) => l.done));
      const stats = await statsOf('grpc_queue');
      expect(rowsRun(stats)).toBe(1);
      expect(stats.inference_stats.cancelled!.count).toBe(10);
    } finally {
      client.close();
    }
  });
});
