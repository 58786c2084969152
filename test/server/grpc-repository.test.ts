import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { FRAUD_EXAMPLE, tempRoot } from '../batch/batch-fixtures.ts';

/**
 * gRPC is a thin adapter over the protocol core: the repository RPCs call the same RepositoryControl as the REST
 * /v2/repository routes, not the HTTP application (no `app.inject`), and their failures are the catalogue's
 * CaliperErrors, mapped once to a gRPC status.
 */

type Callback = (error: ServiceError | null, response: Record<string, unknown>) => void;
type InferenceClient = Client & Record<string, (request: object, ...rest: unknown[]) => unknown>;

const ADMIN = 'grpc-repository-admin';
const root = tempRoot('grpc-repository');
let server: RunningServer;
let client: InferenceClient;

function call(method: string, request: object, token: string | undefined = ADMIN): Promise<Record<string, unknown>> {
  const metadata = new Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    (client[method] as (r: object, m: Metadata, cb: Callback) => void).call(client, request, metadata, (error, r) =>
      error ? reject(error) : resolve(r),
    );
  });
}

const failure = (method: string, request: object): Promise<ServiceError> =>
  call(method, request).then(
    () => {
      throw new Error(`${method} succeeded, expected an error`);
    },
    (error: ServiceError) => error,
  );

beforeAll(async () => {
  // A served fraud model, and a second folder whose model file ONNX Runtime refuses.
  const models = join(root.dir, 'models');
  mkdirSync(join(models, 'fraud_detector', '1'), { recursive: true });
  copyFileSync(join(FRAUD_EXAMPLE, 'model.yaml'), join(models, 'fraud_detector', 'model.yaml'));
  copyFileSync(join(FRAUD_EXAMPLE, '1', 'model.onnx'), join(models, 'fraud_detector', '1', 'model.onnx'));
  mkdirSync(join(models, 'broken', '1'), { recursive: true });
  writeFileSync(
    join(models, 'broken', 'model.yaml'),
    readFileSync(join(FRAUD_EXAMPLE, 'model.yaml'), 'utf8').replace('name: fraud_detector', 'name: broken'),
  );
  writeFileSync(join(models, 'broken', '1', 'model.onnx'), 'not an ONNX model');
  server = await startServing({
    paths: [models],
    port: 0,
    grpcPort: 0,
    logger: pino({ level: 'silent' }),
    auth: { adminToken: ADMIN },
    strictReadiness: false,
  });
  const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const pkg = loadPackageDefinition(definition) as unknown as {
    inference: {
      GRPCInferenceService: new (a: string, c: ReturnType<typeof credentials.createInsecure>) => InferenceClient;
    };
  };
  client = new pkg.inference.GRPCInferenceService(`127.0.0.1:${server.grpc!.port}`, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.close();
  root.remove();
});

describe('gRPC repository RPCs', () => {
  it('answer index, unload and load with the HTTP application closed (they do not go through it)', async () => {
    await server.app.close();
    const index = (await call('RepositoryIndex', {})).models as Record<string, string>[];
    expect(index).toContainEqual({ name: 'fraud_detector', version: '1', state: 'READY', reason: '' });
    expect(index.find((m) => m.name === 'broken')).toMatchObject({ state: 'UNAVAILABLE' });
    expect(await call('RepositoryIndex', { ready: true })).toEqual({
      models: [{ name: 'fraud_detector', version: '1', state: 'READY', reason: '' }],
    });

    await call('RepositoryModelUnload', { model_name: 'fraud_detector' });
    expect(server.repository.has('fraud_detector')).toBe(false);
    expect(await call('ModelReady', { name: 'fraud_detector' }, undefined)).toEqual({ ready: false });

    await call('RepositoryModelLoad', { model_name: 'fraud_detector' });
    expect(server.repository.version('fraud_detector').state).toBe('ready');
    expect(await call('ModelReady', { name: 'fraud_detector' }, undefined)).toEqual({ ready: true });
  });

  it('fail with the catalogue status of the error the control threw, its code in the trailers', async () => {
    const unknown = await failure('RepositoryModelLoad', { model_name: 'no_such_model' });
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(unknown.metadata.get('caliper-error-code')).toEqual(['CALIPER_MODEL_NOT_FOUND']);
    expect(unknown.details).toMatch(/"no_such_model" is in neither the registry nor the served folders/);

    const broken = await failure('RepositoryModelLoad', { model_name: 'broken' });
    expect(broken.metadata.get('caliper-error-code')).toEqual(['CALIPER_MODEL_LOAD_FAILED']);
    expect(broken.code).toBe(status.INTERNAL);
    expect(server.repository.has('broken')).toBe(false);

    const unloadUnknown = await failure('RepositoryModelUnload', { model_name: 'no_such_model' });
    expect(unloadUnknown.code).toBe(status.NOT_FOUND);
    expect(unloadUnknown.metadata.get('caliper-error-code')).toEqual(['CALIPER_MODEL_NOT_FOUND']);
  });
});

describe('the gRPC service', () => {
  const GRPC = join(import.meta.dirname, '../../src/server/grpc');

  it('is split by concern and holds no HTTP application: no fastify import, no inject', () => {
    const files = readdirSync(GRPC).filter((name) => name.endsWith('.ts'));
    for (const concern of [
      'grpc-status.ts',
      'rpc-protection.ts',
      'grpc-admission.ts',
      'inference-handlers.ts',
      'infer-stream.ts',
      'inference-service.ts',
    ])
      expect(files).toContain(concern);
    const offending = files.filter((name) => /from 'fastify'|\.inject\(/.test(readFileSync(join(GRPC, name), 'utf8')));
    expect(offending).toEqual([]);
  });

  it('and the REST repository routes call the one protocol-neutral repository control', () => {
    const src = join(import.meta.dirname, '../../src');
    const callers = ['server/routes/repository-routes.ts', 'server/grpc/inference-handlers.ts'];
    for (const file of callers)
      expect(readFileSync(join(src, file), 'utf8'), file).toMatch(
        /from '\.\.\/\.\.\/protocol\/repository-control\.ts'/,
      );
  });
});
