import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcStatus } from '../../src/errors.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';

/** Readiness is decided where a request is routed to a version, so every protocol refuses a version not ready alike. */

const transaction = { transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 300 };
let server: RunningServer;
let version: ModelVersion;

beforeAll(async () => {
  server = await startServing({
    paths: ['examples/fraud-detector'],
    port: 0,
    grpcPort: 0,
    logger: pino({ level: 'silent' }),
  });
  version = server.repository.version('fraud_detector');
});

afterAll(async () => {
  version.state = 'ready';
  await server?.close();
});

const post = (path: string, body: unknown): Promise<Response> =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

function grpcInfer(): Promise<ServiceError | undefined> {
  const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true });
  const Service = (loadPackageDefinition(definition).inference as Record<string, unknown>).GRPCInferenceService as new (
    address: string,
    creds: ReturnType<typeof credentials.createInsecure>,
  ) => Client & Record<string, (request: object, callback: (error: ServiceError | null) => void) => void>;
  const client = new Service(`127.0.0.1:${server.grpc!.port}`, credentials.createInsecure());
  const width = version.signature.inputs[0]!.shape[1]!;
  return new Promise((resolve) =>
    client.ModelInfer!(
      {
        model_name: 'fraud_detector',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
        raw_input_contents: [Buffer.alloc(4 * width)],
      },
      (error) => {
        client.close();
        resolve(error ?? undefined);
      },
    ),
  );
}

describe('a model version that is not ready', () => {
  it('answers /predict 503 with Retry-After while its version is not ready, then 200 once it is', async () => {
    expect((await post('/models/fraud_detector/predict', transaction)).status).toBe(200);
    for (const state of ['loading', 'unloading'] as const) {
      version.state = state;
      for (const path of [
        '/models/fraud_detector/predict',
        `/models/fraud_detector/versions/${version.version}/predict`,
        '/predict',
      ]) {
        const refused = await post(path, transaction);
        expect(refused.status, `${state} ${path}`).toBe(503);
        expect(refused.headers.get('retry-after')).toBe('1');
        const body = (await refused.json()) as { code: string; error: string };
        expect(body.code).toBe('CALIPER_MODEL_NOT_READY');
        expect(body.error).toContain(`version ${version.version} is ${state}`);
      }
    }
    version.state = 'ready';
    expect((await post('/models/fraud_detector/predict', transaction)).status).toBe(200);
  });

  it('is refused the same way over v2 REST and gRPC', async () => {
    version.state = 'loading';
    try {
      const width = version.signature.inputs[0]!.shape[1]!;
      const v2 = await post('/v2/models/fraud_detector/infer', {
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width], data: new Array(width).fill(0) }],
      });
      expect(v2.status).toBe(503);
      expect(((await v2.json()) as { code: string }).code).toBe('CALIPER_MODEL_NOT_READY');
      expect((await grpcInfer())?.code).toBe(GrpcStatus.UNAVAILABLE);
    } finally {
      version.state = 'ready';
    }
  });
});
