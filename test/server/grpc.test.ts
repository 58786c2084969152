import { credentials, loadPackageDefinition, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';

/** A stock grpc-js client generated from the same .proto, as any KServe/Triton client would be. */
type Callback = (error: ServiceError | null, response: Record<string, unknown>) => void;
type InferenceClient = Client & Record<string, (request: object, ...rest: unknown[]) => unknown>;

let server: RunningServer;
let client: InferenceClient;

function call(
  method: string,
  request: object,
  metadata = new Metadata(),
  options: object = {},
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    (client[method] as (r: object, m: Metadata, o: object, cb: Callback) => void).call(
      client,
      request,
      metadata,
      options,
      (error, response) => (error ? reject(error) : resolve(response)),
    );
  });
}

async function failure(method: string, request: object): Promise<ServiceError> {
  try {
    await call(method, request);
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error(`${method} succeeded, expected an error`);
}

/** Little-endian FP32 bytes, as Triton's clients send numpy's tobytes(). */
function fp32Bytes(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

/** Feature rows as wide as the served version's input (the example's newer versions add features). */
let width: number;
let row: number[];
let risky: number[];

beforeAll(async () => {
  server = await startServing({
    paths: ['examples/fraud-detector'],
    port: 0,
    grpcPort: 0,
    logger: pino({ level: 'silent' }),
    auth: { adminToken: 'grpc-admin' },
  });
  width = server.repository.version('fraud_detector').signature.inputs[0]!.shape[1]!;
  row = Array.from({ length: width }, (_, i) =>
    i === 0 ? Math.log1p(120) : i === 1 ? Math.log1p(3600) / 10 : i === 3 ? 1 : 0,
  );
  risky = Array.from({ length: width }, (_, i) =>
    i === 0 ? Math.log1p(9000) : i === 1 ? Math.log1p(5) / 10 : i === 8 ? 1 : 0,
  );
  const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const pkg = loadPackageDefinition(definition) as unknown as {
    inference: {
      GRPCInferenceService: new (
        address: string,
        creds: ReturnType<typeof credentials.createInsecure>,
      ) => InferenceClient;
    };
  };
  client = new pkg.inference.GRPCInferenceService(`127.0.0.1:${server.grpc!.port}`, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

describe('gRPC inference.GRPCInferenceService', () => {
  it('answers health and metadata', async () => {
    expect(await call('ServerLive', {})).toEqual({ live: true });
    expect(await call('ServerReady', {})).toEqual({ ready: true });
    expect(await call('ModelReady', { name: 'fraud_detector', version: '' })).toEqual({ ready: true });
    const meta = await call('ServerMetadata', {});
    expect(meta.name).toBe('caliper');
    expect(meta.extensions).toContain('binary_tensor_data');
    const model = await call('ModelMetadata', { name: 'fraud_detector' });
    const served = server.repository.version('fraud_detector');
    expect(model).toMatchObject({ name: 'fraud_detector', platform: 'onnxruntime_onnx' });
    expect(model.versions).toContain(String(served.version));
    expect(model.inputs).toEqual([{ name: 'features', datatype: 'FP32', shape: [-1, width] }]);
    expect(model.outputs).toEqual([{ name: 'fraud_probability', datatype: 'FP32', shape: [-1, 1] }]);
  });

  it('infers from raw_input_contents and agrees with REST v2 JSON', async () => {
    const response = await call('ModelInfer', {
      model_name: 'fraud_detector',
      id: 'raw-1',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [2, width] }],
      raw_input_contents: [fp32Bytes([...row, ...risky])],
    });
    expect(response).toMatchObject({
      model_name: 'fraud_detector',
      model_version: String(server.repository.version('fraud_detector').version),
      id: 'raw-1',
    });
    expect(response.outputs).toEqual([
      expect.objectContaining({ name: 'fraud_probability', datatype: 'FP32', shape: [2, 1] }),
    ]);
    const raw = (response.raw_output_contents as Buffer[])[0]!;
    expect(raw.byteLength).toBe(8);
    const probabilities = [raw.readFloatLE(0), raw.readFloatLE(4)];

    const rest = await fetch(`${server.url}/v2/models/fraud_detector/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [{ name: 'features', datatype: 'FP32', shape: [2, width], data: [...row, ...risky] }],
      }),
    });
    const json = (await rest.json()) as { outputs: { data: number[] }[] };
    expect(probabilities[0]).toBeCloseTo(json.outputs[0]!.data[0]!, 6);
    expect(probabilities[1]).toBeCloseTo(json.outputs[0]!.data[1]!, 6);
    expect(probabilities[1]!).toBeGreaterThan(probabilities[0]!);
  });

  it('infers from typed fp32_contents and returns only the requested outputs', async () => {
    const response = await call('ModelInfer', {
      model_name: 'fraud_detector',
      model_version: String(server.repository.version('fraud_detector').version),
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width], contents: { fp32_contents: row } }],
      outputs: [{ name: 'fraud_probability' }],
    });
    expect((response.raw_output_contents as Buffer[])[0]!.byteLength).toBe(4);
  });

  it('answers the bidirectional stream in order of completion, matched by id, with errors in error_message', async () => {
    const stream = (
      client.ModelStreamInfer as () => NodeJS.ReadWriteStream & { write(m: object): boolean; end(): void }
    ).call(client);
    const answers: Record<string, unknown>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Record<string, unknown>) => answers.push(m));
      stream.on('end', () => resolve());
      stream.on('error', reject);
    });
    for (let i = 0; i < 3; i++) {
      stream.write({
        model_name: 'fraud_detector',
        id: `s${i}`,
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
        raw_input_contents: [fp32Bytes(row)],
      });
    }
    stream.write({
      model_name: 'fraud_detector',
      id: 'bad',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [fp32Bytes([1, 2, 3])],
    });
    stream.end();
    await done;
    expect(answers).toHaveLength(4);
    const byId = new Map(answers.map((a) => [(a.infer_response as { id: string }).id, a]));
    for (const id of ['s0', 's1', 's2']) {
      expect(byId.get(id)!.error_message).toBe('');
      expect(
        (byId.get(id)!.infer_response as { raw_output_contents: Buffer[] }).raw_output_contents[0]!.byteLength,
      ).toBe(4);
    }
    expect(byId.get('bad')!.error_message).toContain(`needs ${4 * width} bytes (${width} × 4), got 12`);
  });

  it('rejects raw contents whose size does not match shape × datatype', async () => {
    const error = await failure('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [2, width] }],
      raw_input_contents: [fp32Bytes(row)],
    });
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toBe(
      `raw_input_contents[0] (input features): shape [2, ${width}] of FP32 needs ${8 * width} bytes (${2 * width} × 4), got ${4 * width}`,
    );
  });

  it('rejects typed contents of the wrong count, wrong datatypes and a raw entry count that differs from the inputs', async () => {
    const short = await failure('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width], contents: { fp32_contents: [1, 2] } }],
    });
    expect(short.code).toBe(status.INVALID_ARGUMENT);
    expect(short.details).toBe(
      `inputs.features.contents.fp32_contents: shape [1, ${width}] needs ${width} values, got 2`,
    );
    const datatype = await failure('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP64', shape: [1, width] }],
      raw_input_contents: [Buffer.alloc(8 * width)],
    });
    expect(datatype.details).toMatch(/inputs\.features\.datatype: expected float32, got float64/);
    const unknownType = await failure('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FLOAT', shape: [1, width] }],
    });
    expect(unknownType.details).toMatch(/inputs\.features\.datatype: expected one of BOOL/);
    const count = await failure('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [fp32Bytes(row), fp32Bytes(row)],
    });
    expect(count.details).toMatch(/raw_input_contents: expected one entry per input \(1\), got 2/);
  });

  it('maps catalogue errors to gRPC status codes', async () => {
    const missing = await failure('ModelInfer', {
      model_name: 'nope',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [fp32Bytes(row)],
    });
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.metadata.get('caliper-error-code')).toEqual(['CALIPER_MODEL_NOT_FOUND']);
    const version = await failure('ModelMetadata', { name: 'fraud_detector', version: '9' });
    expect(version.code).toBe(status.NOT_FOUND);
  });

  it('answers a malformed protobuf with INVALID_ARGUMENT and keeps serving', async () => {
    const garbage = Buffer.from([0x0a, 0x05, 0x61, 0x62, 0x63]);
    const error = await new Promise<ServiceError>((resolve, reject) => {
      client.makeUnaryRequest(
        '/inference.GRPCInferenceService/ModelInfer',
        (b: Buffer) => b,
        (b: Buffer) => b,
        garbage,
        (e) => (e ? resolve(e) : reject(new Error('accepted garbage'))),
      );
    });
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/malformed ModelInfer request protobuf/);
    expect(await call('ServerLive', {})).toEqual({ live: true });
  });

  it('counts requests in ModelStatistics and lists the repository', async () => {
    const stats = await call('ModelStatistics', { name: 'fraud_detector' });
    const entry = (
      stats.model_stats as {
        name: string;
        version: string;
        inference_count: number;
        inference_stats: { success: { count: number; ns: number }; fail: { count: number } };
      }[]
    )[0]!;
    expect(entry).toMatchObject({ name: 'fraud_detector' });
    expect(entry.inference_stats.success.count).toBeGreaterThanOrEqual(6);
    expect(entry.inference_stats.success.ns).toBeGreaterThan(0);
    const admin = new Metadata();
    admin.set('authorization', 'Bearer grpc-admin');
    const index = await call('RepositoryIndex', { ready: true }, admin);
    expect(index.models).toContainEqual({
      name: 'fraud_detector',
      version: String(server.repository.version('fraud_detector').version),
      state: 'READY',
      reason: '',
    });
  });

  it('guards the repository RPCs with the admin token, as the REST /v2/repository routes', async () => {
    const anonymous = await failure('RepositoryModelUnload', { model_name: 'fraud_detector' });
    expect(anonymous.code).toBe(status.UNAUTHENTICATED);
    const wrong = new Metadata();
    wrong.set('authorization', 'Bearer nope');
    const denied = await call('RepositoryIndex', {}, wrong).catch((e: ServiceError) => e);
    expect((denied as ServiceError).code).toBe(status.PERMISSION_DENIED);
    expect(server.repository.has('fraud_detector')).toBe(true);
  });

  it('checks x-caliper-priority metadata against the model priority levels', async () => {
    const metadata = new Metadata();
    metadata.set('x-caliper-priority', '99');
    const error = await new Promise<ServiceError>((resolve, reject) => {
      (client.ModelInfer as (r: object, m: Metadata, cb: Callback) => void).call(
        client,
        {
          model_name: 'fraud_detector',
          inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
          raw_input_contents: [fp32Bytes(row)],
        },
        metadata,
        (e) => (e ? resolve(e) : reject(new Error('accepted priority 99'))),
      );
    });
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/x-caliper-priority: expected an integer from 0/);
    // Without priority levels, the error says how to get them.
    expect(error.details).toMatch(
      /model fraud_detector has one priority level; set batching.priority_levels in its model.yaml/,
    );
    const timeout = new Metadata();
    timeout.set('x-caliper-timeout-ms', 'soon');
    const badTimeout = await call(
      'ModelInfer',
      {
        model_name: 'fraud_detector',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
        raw_input_contents: [fp32Bytes(row)],
      },
      timeout,
    ).catch((e: ServiceError) => e);
    expect((badTimeout as ServiceError).details).toBe(
      'x-caliper-timeout-ms: expected a positive number of milliseconds, got "soon"',
    );
    // Triton's `timeout` parameter reads as on REST: 0 is no timeout of its own, a negative one is refused.
    const withTimeout = (microseconds: number) =>
      call('ModelInfer', {
        model_name: 'fraud_detector',
        parameters: { timeout: { int64_param: microseconds } },
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
        raw_input_contents: [fp32Bytes(row)],
      });
    expect((await withTimeout(0)).model_name).toBe('fraud_detector');
    const negative = (await withTimeout(-5).catch((e: ServiceError) => e)) as ServiceError;
    expect(negative.code).toBe(status.INVALID_ARGUMENT);
    expect(negative.details).toBe(
      'parameters.timeout: expected 0 (no timeout) or a positive number of microseconds, got -5',
    );
  });

  it('answers DEADLINE_EXCEEDED when the call deadline has passed', async () => {
    const late = await call(
      'ModelInfer',
      {
        model_name: 'fraud_detector',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
        raw_input_contents: [fp32Bytes(row)],
      },
      new Metadata(),
      { deadline: Date.now() - 1 },
    ).catch((e: ServiceError) => e);
    expect((late as ServiceError).code).toBe(status.DEADLINE_EXCEEDED);
  });
});

describe('gRPC API keys and graceful shutdown', () => {
  it('asks for an API key on inference; on close answers the calls in flight, then stops', async () => {
    const keyed = await startServing({
      paths: ['examples/fraud-detector'],
      port: 0,
      grpcPort: 0,
      logger: pino({ level: 'silent' }),
      auth: { apiKeys: ['k1'] },
    });
    const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(definition) as unknown as {
      inference: {
        GRPCInferenceService: new (
          address: string,
          creds: ReturnType<typeof credentials.createInsecure>,
        ) => InferenceClient;
      };
    };
    const keyedClient = new pkg.inference.GRPCInferenceService(
      `127.0.0.1:${keyed.grpc!.port}`,
      credentials.createInsecure(),
    );
    const width = keyed.repository.version('fraud_detector').signature.inputs[0]!.shape[1]!;
    const request = {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [Buffer.alloc(4 * width)],
    };
    const infer = (metadata: Metadata): Promise<ServiceError | null> =>
      new Promise((resolve) => {
        (keyedClient.ModelInfer as (r: object, m: Metadata, cb: Callback) => void).call(
          keyedClient,
          request,
          metadata,
          (e) => resolve(e),
        );
      });
    expect((await infer(new Metadata()))?.code).toBe(status.UNAUTHENTICATED);
    const anonymousStream = (
      keyedClient.ModelStreamInfer as () => NodeJS.ReadWriteStream & { write(m: object): boolean }
    ).call(keyedClient);
    const streamError = await new Promise<ServiceError>((resolve) => {
      anonymousStream.on('error', resolve);
      anonymousStream.on('data', () => undefined);
      anonymousStream.write(request);
    });
    expect(streamError.code).toBe(status.UNAUTHENTICATED);
    const key = new Metadata();
    key.set('x-api-key', 'k1');
    expect(await infer(key)).toBeNull();

    // A call accepted before shutdown (an open stream) is still answered; new calls find the endpoint gone.
    const metadata = new Metadata();
    metadata.set('x-api-key', 'k1');
    const stream = (
      keyedClient.ModelStreamInfer as (
        m: Metadata,
      ) => NodeJS.ReadWriteStream & { write(m: object): boolean; end(): void }
    ).call(keyedClient, metadata);
    const answers: Record<string, unknown>[] = [];
    const next = (): Promise<Record<string, unknown>> => new Promise((resolve) => stream.once('data', resolve));
    stream.write({ ...request, id: 'before' });
    answers.push(await next());
    const closed = keyed.close();
    stream.write({ ...request, id: 'during' });
    answers.push(await next());
    stream.end();
    await closed;
    expect(answers.map((a) => [(a.infer_response as { id: string }).id, a.error_message])).toEqual([
      ['before', ''],
      ['during', ''],
    ]);
    const refused = await infer(key);
    expect(refused?.code).toBe(status.UNAVAILABLE);
    keyedClient.close();
  });
});
