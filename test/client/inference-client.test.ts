import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as GrpcServer, ServerCredentials, status, type ServiceDefinition } from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GrpcInferenceClient,
  InferenceClientError,
  RestInferenceClient,
  type InferenceClient,
} from '../../src/client/index.ts';
import { inferenceServiceDefinition } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';

let server: RunningServer;
let width: number;
let rows: Float32Array;

beforeAll(async () => {
  server = await startServing({
    paths: ['examples/fraud-detector'],
    port: 0,
    grpcPort: 0,
    logger: pino({ level: 'silent' }),
  });
  width = server.repository.version('fraud_detector').signature.inputs[0]!.shape[1]!;
  rows = new Float32Array(3 * width);
  for (let r = 0; r < 3; r++) {
    rows[r * width] = Math.log1p(10 ** (r + 1));
    rows[r * width + 2 + r] = 1;
  }
});
afterAll(async () => {
  await server?.close();
});

function listen(
  handler: Parameters<typeof createServer>[1],
): Promise<{ http: HttpServer; url: string; connections: () => number }> {
  let connections = 0;
  const http = createServer(handler);
  http.on('connection', () => connections++);
  return new Promise((resolve) =>
    http.listen(0, '127.0.0.1', () =>
      resolve({
        http,
        url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
        connections: () => connections,
      }),
    ),
  );
}

describe('caliper/client against a Caliper server', () => {
  it('gives the same answer over REST binary, REST JSON and gRPC', async () => {
    const clients: InferenceClient[] = [
      new RestInferenceClient({ url: server.url }),
      new RestInferenceClient({ url: server.url, binary: false }),
      new GrpcInferenceClient({ address: `127.0.0.1:${server.grpc!.port}` }),
    ];
    const answers = [];
    for (const client of clients) {
      expect(await client.serverLive()).toBe(true);
      expect(await client.serverReady()).toBe(true);
      expect(await client.modelReady('fraud_detector')).toBe(true);
      expect((await client.serverMetadata()).name).toBe('caliper');
      expect((await client.modelMetadata('fraud_detector')).inputs[0]).toEqual({
        name: 'features',
        datatype: 'FP32',
        shape: [-1, width],
      });
      const result = await client.infer(
        'fraud_detector',
        [{ name: 'features', datatype: 'FP32', shape: [3, width], data: rows }],
        { id: 'q1' },
      );
      expect(result).toMatchObject({ modelName: 'fraud_detector', id: 'q1' });
      const output = result.outputs.fraud_probability!;
      expect(output).toMatchObject({ datatype: 'FP32', shape: [3, 1] });
      expect(output.data).toBeInstanceOf(Float32Array);
      answers.push(Array.from(output.data as Float32Array));
      client.close();
    }
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  it('reports server errors with their status and Caliper code, without retrying them', async () => {
    const rest = new RestInferenceClient({ url: server.url });
    const grpc = new GrpcInferenceClient({ address: `127.0.0.1:${server.grpc!.port}` });
    for (const client of [rest, grpc]) {
      const error = await client
        .infer('fraud_detector', [
          { name: 'features', datatype: 'FP32', shape: [1, width + 1], data: new Float32Array(width + 1) },
        ])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InferenceClientError);
      expect((error as InferenceClientError).code).toBe('CALIPER_INVALID_INPUT');
      expect((error as InferenceClientError).message).toMatch(/inputs\.features\.shape: dimension 1 must be/);
      client.close();
    }
    await expect(
      new RestInferenceClient({ url: server.url }).infer('x', [{ name: 'a', datatype: 'FP32', shape: [2], data: [1] }]),
    ).rejects.toThrow(/shape \[2\] needs 2 values, got 1/);
  });

  it('streams many requests over one ModelStreamInfer call', async () => {
    const client = new GrpcInferenceClient({ address: `127.0.0.1:${server.grpc!.port}` });
    const stream = client.openStream();
    const results = await Promise.all(
      [0, 1, 2].map((r) =>
        stream.infer('fraud_detector', [
          { name: 'features', datatype: 'FP32', shape: [1, width], data: rows.subarray(r * width, (r + 1) * width) },
        ]),
      ),
    );
    const single = await client.infer('fraud_detector', [
      { name: 'features', datatype: 'FP32', shape: [3, width], data: rows },
    ]);
    const expected = single.outputs.fraud_probability!.data as Float32Array;
    results.forEach((r, i) =>
      expect((r.outputs.fraud_probability!.data as Float32Array)[0]).toBeCloseTo(expected[i]!, 6),
    );
    stream.close();
    client.close();
  });
});

describe('client retries, deadlines and connection reuse', () => {
  it('retries 503 with backoff, honouring Retry-After, and reuses one keep-alive connection', async () => {
    let calls = 0;
    const fake = await listen((_req, res) => {
      calls++;
      if (calls <= 2)
        res
          .writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' })
          .end('{"error":"queue full","code":"CALIPER_QUEUE_FULL"}');
      else res.writeHead(200).end('{"name":"fake","version":"1","extensions":[]}');
    });
    const client = new RestInferenceClient({ url: fake.url, retry: { initialDelayMs: 5 } });
    expect((await client.serverMetadata()).name).toBe('fake');
    expect(calls).toBe(3);
    for (let i = 0; i < 4; i++) await client.serverMetadata();
    expect(fake.connections()).toBe(1);

    calls = 0;
    const impatient = new RestInferenceClient({ url: fake.url, retry: { maxAttempts: 2, initialDelayMs: 5 } });
    const error = (await impatient.serverMetadata().catch((e: unknown) => e)) as InferenceClientError;
    expect(error).toMatchObject({ httpStatus: 503, code: 'CALIPER_QUEUE_FULL', retryable: true });
    expect(calls).toBe(2);
    client.close();
    impatient.close();
    fake.http.close();
  });

  it('gives up at the deadline when the server does not answer', async () => {
    const fake = await listen(() => undefined);
    const client = new RestInferenceClient({ url: fake.url, timeoutMs: 150 });
    const started = Date.now();
    await expect(client.serverMetadata()).rejects.toMatchObject({ code: 'CALIPER_DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(2000);
    client.close();
    fake.http.closeAllConnections();
    fake.http.close();
  });

  it('retries gRPC UNAVAILABLE and stops at DEADLINE_EXCEEDED', async () => {
    let calls = 0;
    const grpc = new GrpcServer();
    const definition = inferenceServiceDefinition() as ServiceDefinition;
    grpc.addService(definition, {
      ServerLive: (_call: unknown, callback: (e: object | null, r?: object) => void) => {
        calls++;
        if (calls <= 2) callback({ code: status.UNAVAILABLE, details: 'warming up' });
        else callback(null, { live: true });
      },
      ServerReady: () => undefined,
    });
    const port = await new Promise<number>((resolve, reject) =>
      grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const client = new GrpcInferenceClient({
      address: `127.0.0.1:${port}`,
      timeoutMs: 300,
      retry: { initialDelayMs: 5 },
    });
    expect(await client.serverLive()).toBe(true);
    expect(calls).toBe(3);
    await expect(client.serverReady()).rejects.toMatchObject({ grpcCode: status.DEADLINE_EXCEEDED });
    client.close();
    grpc.forceShutdown();
  });
});
