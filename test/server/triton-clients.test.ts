/**
 * What NVIDIA Triton's and KServe's stock clients send, byte for byte, against a real Caliper server — written
 * from the protocol documents (triton-inference-server/server docs/protocol: the binary data, parameters,
 * statistics, model configuration and model repository extensions; grpc_service.proto) and from what the
 * client's HTTP and gRPC transports put on the wire, since the Python client cannot be installed here:
 *
 * - the synchronous HTTP transport sends no Content-Type at all: JSON bodies go bare, binary bodies carry only
 *   Inference-Header-Content-Length; `request_compression_algorithm` adds Content-Encoding: gzip or deflate
 *   (zlib-wrapped) over the whole body;
 * - `priority` is Triton's numbering (REST parameters.priority, gRPC parameters["priority"] as uint64):
 *   0 the model's default, 1 the highest, larger lower, past the model's levels the default;
 * - `is_model_ready` over gRPC reads ModelReady's `ready`, and raises on any error status;
 * - a client writes its whole request before reading the answer (Python's http.client does).
 *
 * Raw node:http requests and sockets are used so that no header is added that the stock client would not send.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import { credentials, loadPackageDefinition, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SchedulerFactory } from '../../src/lifecycle/model-version.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import { defaultScheduler } from '../../src/scheduler/scheduler-factory.ts';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { priorityFromTriton } from '../../src/protocol/triton-priority.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const FRAUD_DIR = 'examples/fraud-detector';
const BODY_LIMIT = 1024 * 1024;

let server: RunningServer;
const repo = new TempModelRepository();
/** Priorities the scheduler was handed, per model, in submission order (undefined: the default level). */
const submitted = new Map<string, (number | undefined)[]>();
let width: number;

type InferenceClient = Client & Record<string, (request: object, ...rest: unknown[]) => unknown>;
let grpc: InferenceClient;

/** Records every job's priority on its way into the real scheduler. */
const recordingScheduler: SchedulerFactory = (pool, config, signature, batchAxis) => {
  const scheduler = defaultScheduler(pool, config, signature, batchAxis);
  const submit = scheduler.submit.bind(scheduler);
  scheduler.submit = (job) => {
    const list = submitted.get(config.name) ?? [];
    list.push(job.priority);
    submitted.set(config.name, list);
    return submit(job);
  };
  return scheduler;
};

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: Record<string, unknown>;
}

/** One HTTP request with exactly these headers (node adds Host and Connection only). */
function send(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    const req = httpRequest(
      `${server.url}${path}`,
      { method, headers: { ...(payload ? { 'content-length': String(payload.byteLength) } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const all = Buffer.concat(chunks);
          const headerLength = res.headers['inference-header-content-length'];
          const jsonPart = headerLength === undefined ? all : all.subarray(0, Number(headerLength));
          let json: Record<string, unknown> = {};
          try {
            json = jsonPart.byteLength === 0 ? {} : (JSON.parse(jsonPart.toString('utf8')) as Record<string, unknown>);
          } catch {
            json = {};
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: all, json });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function fp32(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

const featureRow = (): number[] =>
  Array.from({ length: width }, (_, i) =>
    i === 0 ? Math.log1p(120) : i === 1 ? Math.log1p(3600) / 10 : i === 3 ? 1 : 0,
  );

function jsonInfer(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    inputs: [{ name: 'features', shape: [1, width], datatype: 'FP32', data: featureRow() }],
    ...extra,
  });
}

/** The binary extension's body: the JSON header, then the raw tensor. */
function binaryInfer(): { body: Buffer; headerLength: number } {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'features', shape: [1, width], datatype: 'FP32', parameters: { binary_data_size: 4 * width } }],
      outputs: [{ name: 'fraud_probability', parameters: { binary_data: true } }],
    }),
  );
  return { body: Buffer.concat([header, fp32(featureRow())]), headerLength: header.byteLength };
}

let expected: number;

/** text [N, 3] BYTES → same [N, 3] (Identity): whatever reaches ONNX Runtime comes back. */
function echoBytesModel() {
  const g = new GraphBuilder('echo_bytes', 17);
  g.input({ name: 'text', elemType: TensorDataType.STRING, shape: ['N', 3] });
  g.node('Identity', ['text'], {}, ['same']);
  g.output({ name: 'same', elemType: TensorDataType.STRING, shape: ['N', 3] });
  return g.build();
}

const ECHO_BYTES_CONFIG = {
  name: 'echo_bytes',
  inputs: { a: { type: 'string' }, b: { type: 'string' }, c: { type: 'string' } },
  preprocess: { tensor: 'text', dtype: 'string', columns: [{ identity: 'a' }, { identity: 'b' }, { identity: 'c' }] },
  postprocess: { same: { output: 'same' } },
  instances: { count: 1, kind: 'worker', intra_op_threads: 1 },
};

/** BYTES elements as the binary extension and gRPC raw contents carry them: 4-byte little-endian length, then the bytes. */
function lengthPrefixed(elements: Buffer[]): Buffer {
  return Buffer.concat(
    elements.flatMap((e) => {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(e.byteLength);
      return [length, e];
    }),
  );
}

function splitLengthPrefixed(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < bytes.byteLength; ) {
    const length = bytes.readUInt32LE(offset);
    out.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return out;
}

function grpcCall(method: string, request: object, metadata = new Metadata()): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    (
      grpc[method] as (r: object, m: Metadata, cb: (e: ServiceError | null, r: Record<string, unknown>) => void) => void
    ).call(grpc, request, metadata, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function grpcFailure(method: string, request: object, metadata = new Metadata()): Promise<ServiceError> {
  try {
    await grpcCall(method, request, metadata);
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error(`${method} succeeded, expected an error`);
}

beforeAll(async () => {
  const fraud = parseYaml(readFileSync(`${FRAUD_DIR}/model.yaml`, 'utf8')) as Record<string, unknown>;
  repo.add('fraud_detector', { ...fraud, cache: { enabled: false } }, `${FRAUD_DIR}/1/model.onnx`);
  repo.add(
    'ranked',
    {
      ...fraud,
      name: 'ranked',
      cache: { enabled: false },
      batching: { max_batch_size: 8, max_queue_delay_us: 0, priority_levels: 3 },
    },
    `${FRAUD_DIR}/1/model.onnx`,
  );
  repo.add('echo_bytes', ECHO_BYTES_CONFIG, echoBytesModel());
  repo.add('counted', { ...fraud, name: 'counted', cache: { enabled: false } }, `${FRAUD_DIR}/1/model.onnx`);
  repo.add('cached', { ...fraud, name: 'cached', cache: { max_entries: 100, ttl_s: 60 } }, `${FRAUD_DIR}/1/model.onnx`);
  server = await startServing({
    paths: [repo.dir],
    port: 0,
    grpcPort: 0,
    bodyLimit: BODY_LIMIT,
    logger: createLogger('silent'),
    schedulerFactory: recordingScheduler,
    auth: { adminToken: 'admin' },
  });
  expect(server.repository.failures).toEqual([]);
  width = server.repository.version('fraud_detector').signature.inputs[0]!.shape[1]!;
  const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const pkg = loadPackageDefinition(definition) as unknown as {
    inference: {
      GRPCInferenceService: new (
        address: string,
        creds: ReturnType<typeof credentials.createInsecure>,
        options?: object,
      ) => InferenceClient;
    };
  };
  grpc = new pkg.inference.GRPCInferenceService(`127.0.0.1:${server.grpc!.port}`, credentials.createInsecure());
  const reference = await send(
    'POST',
    '/v2/models/fraud_detector/infer',
    { 'content-type': 'application/json' },
    jsonInfer(),
  );
  expected = (reference.json.outputs as { data: number[] }[])[0]!.data[0]!;
});

afterAll(async () => {
  grpc?.close();
  await server?.close();
  repo.remove();
});

const probabilityOf = (response: RawResponse): number => {
  const outputs = response.json.outputs as {
    name: string;
    data?: number[];
    parameters?: { binary_data_size?: number };
  }[];
  const output = outputs.find((o) => o.name === 'fraud_probability')!;
  if (output.data) return output.data[0]!;
  return response.body.readFloatLE(Number(response.headers['inference-header-content-length']));
};

describe('fault 1: a body without Content-Type is JSON (the binary extension with Inference-Header-Content-Length)', () => {
  it('infer: a bare JSON body answers 200 with the same numbers as a declared one', async () => {
    const response = await send('POST', '/v2/models/fraud_detector/infer', {}, jsonInfer());
    expect(response.status, response.body.toString()).toBe(200);
    expect(probabilityOf(response)).toBe(expected);
  });

  it('infer: a bare binary body with only Inference-Header-Content-Length is the binary extension', async () => {
    const { body, headerLength } = binaryInfer();
    const response = await send(
      'POST',
      '/v2/models/fraud_detector/versions/1/infer',
      { 'inference-header-content-length': String(headerLength) },
      body,
    );
    expect(response.status, response.body.toString()).toBe(200);
    expect(probabilityOf(response)).toBe(expected);
  });

  it('repository load and unload with bare JSON bodies, as the client sends them', async () => {
    const auth = { authorization: 'Bearer admin' };
    const unload = await send(
      'POST',
      '/v2/repository/models/ranked/unload',
      auth,
      JSON.stringify({ parameters: { unload_dependents: false } }),
    );
    expect(unload.status, unload.body.toString()).toBe(200);
    const load = await send('POST', '/v2/repository/models/ranked/load', auth, '{}');
    expect(load.status, load.body.toString()).toBe(200);
    const index = await send('POST', '/v2/repository/index', auth, '{}');
    expect(index.status, index.body.toString()).toBe(200);
    const empty = await send('POST', '/v2/repository/index', auth);
    expect(empty.status, empty.body.toString()).toBe(200);
  });

  it('a declared Content-Type that is wrong is still 415', async () => {
    const response = await send(
      'POST',
      '/v2/models/fraud_detector/infer',
      { 'content-type': 'text/plain' },
      jsonInfer(),
    );
    expect(response.status).toBe(415);
    expect(String(response.json.error)).toMatch(/content-type/i);
  });
});

describe('fault 2: gzip and deflate request bodies are decoded, the limit counting decoded bytes', () => {
  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
  ] as const)('%s: JSON and binary bodies answer as the plain ones', async (coding, compress) => {
    const json = await send(
      'POST',
      '/v2/models/fraud_detector/infer',
      { 'content-encoding': coding },
      compress(Buffer.from(jsonInfer())),
    );
    expect(json.status, json.body.toString()).toBe(200);
    expect(probabilityOf(json)).toBe(expected);
    const { body, headerLength } = binaryInfer();
    const binary = await send(
      'POST',
      '/v2/models/fraud_detector/infer',
      { 'content-encoding': coding, 'inference-header-content-length': String(headerLength) },
      compress(body),
    );
    expect(binary.status, binary.body.toString()).toBe(200);
    expect(probabilityOf(binary)).toBe(expected);
  });

  it('a decompression bomb (a few KiB inflating past the limit) is a 413, and the server keeps serving', async () => {
    const bomb = gzipSync(Buffer.alloc(16 * BODY_LIMIT, 0x20));
    expect(bomb.byteLength).toBeLessThan(BODY_LIMIT / 8);
    const response = await send('POST', '/v2/models/fraud_detector/infer', { 'content-encoding': 'gzip' }, bomb);
    expect(response.status).toBe(413);
    expect(String(response.json.error)).toMatch(/decompresses.*limit/);
    const ok = await send('POST', '/v2/models/fraud_detector/infer', {}, jsonInfer());
    expect(ok.status).toBe(200);
  });

  it('a body that is not what its Content-Encoding says is a 400; an unknown coding is a 415', async () => {
    const broken = await send('POST', '/v2/models/fraud_detector/infer', { 'content-encoding': 'gzip' }, jsonInfer());
    expect(broken.status).toBe(400);
    expect(String(broken.json.error)).toMatch(/not valid gzip/);
    const unknown = await send('POST', '/v2/models/fraud_detector/infer', { 'content-encoding': 'br' }, jsonInfer());
    expect(unknown.status).toBe(415);
    expect(String(unknown.json.error)).toMatch(/content-encoding/);
  });

  it("gRPC: gzip- and deflate-compressed messages (the client's compression_algorithm) are decoded", async () => {
    for (const algorithm of [1, 2]) {
      const definition = loadSync(INFERENCE_PROTO_PATH, {
        keepCase: true,
        longs: Number,
        defaults: true,
        oneofs: true,
      });
      const pkg = loadPackageDefinition(definition) as unknown as {
        inference: {
          GRPCInferenceService: new (
            address: string,
            creds: ReturnType<typeof credentials.createInsecure>,
            options?: object,
          ) => InferenceClient;
        };
      };
      const compressed = new pkg.inference.GRPCInferenceService(
        `127.0.0.1:${server.grpc!.port}`,
        credentials.createInsecure(),
        { 'grpc.default_compression_algorithm': algorithm },
      );
      const response = await new Promise<Record<string, unknown>>((resolve, reject) => {
        (
          compressed.ModelInfer as (r: object, cb: (e: ServiceError | null, r: Record<string, unknown>) => void) => void
        ).call(
          compressed,
          {
            model_name: 'fraud_detector',
            inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
            raw_input_contents: [fp32(featureRow())],
          },
          (error, result) => (error ? reject(error) : resolve(result)),
        );
      });
      compressed.close();
      expect((response.raw_output_contents as Buffer[])[0]!.readFloatLE(0)).toBe(expected);
    }
  });

  it('gRPC: a gzip message that inflates past the limit is RESOURCE_EXHAUSTED (the limit counts decoded bytes)', async () => {
    const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: Number, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(definition) as unknown as {
      inference: {
        GRPCInferenceService: new (
          address: string,
          creds: ReturnType<typeof credentials.createInsecure>,
          options?: object,
        ) => InferenceClient;
      };
    };
    const compressed = new pkg.inference.GRPCInferenceService(
      `127.0.0.1:${server.grpc!.port}`,
      credentials.createInsecure(),
      { 'grpc.default_compression_algorithm': 2 },
    );
    const error = await new Promise<ServiceError>((resolve, reject) => {
      (compressed.ModelInfer as (r: object, cb: (e: ServiceError | null) => void) => void).call(
        compressed,
        {
          model_name: 'fraud_detector',
          inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
          raw_input_contents: [Buffer.alloc(4 * BODY_LIMIT)],
        },
        (e) => (e ? resolve(e) : reject(new Error('accepted a message past the limit'))),
      );
    });
    compressed.close();
    expect(error.code).toBe(8);
  });
});

describe("fault 3: priority in Triton's numbering (0 default, 1 highest), x-caliper-priority in Caliper's", () => {
  it("maps Triton levels onto Caliper's: 0 and past the levels are the default, 1 the highest", () => {
    expect(priorityFromTriton('p', 0, 3)).toBeUndefined();
    expect(priorityFromTriton('p', 1, 3)).toBe(0);
    expect(priorityFromTriton('p', 3, 3)).toBe(2);
    expect(priorityFromTriton('p', 4, 3)).toBeUndefined();
    expect(priorityFromTriton('p', 1, 1)).toBe(0);
    expect(() => priorityFromTriton('parameters.priority', -1, 3)).toThrow(
      /parameters.priority: expected an unsigned integer/,
    );
    expect(() => priorityFromTriton('parameters.priority', '1', 3)).toThrow(/parameters.priority/);
  });

  it('REST: priority 1 is accepted without priority_levels; on a 3-level model 1 → highest, 3 → lowest, 0 and 9 → default', async () => {
    const plain = await send('POST', '/v2/models/fraud_detector/infer', {}, jsonInfer({ parameters: { priority: 1 } }));
    expect(plain.status, plain.body.toString()).toBe(200);
    submitted.set('ranked', []);
    for (const priority of [1, 3, 0, 9]) {
      const response = await send('POST', '/v2/models/ranked/infer', {}, jsonInfer({ parameters: { priority } }));
      expect(response.status, response.body.toString()).toBe(200);
    }
    expect(submitted.get('ranked')).toEqual([0, 2, undefined, undefined]);
    const bad = await send('POST', '/v2/models/ranked/infer', {}, jsonInfer({ parameters: { priority: -2 } }));
    expect(bad.status).toBe(400);
    expect(String(bad.json.error)).toMatch(/parameters\.priority/);
  });

  it('REST: x-caliper-priority keeps its meaning (0 highest) and wins over parameters.priority', async () => {
    submitted.set('ranked', []);
    const response = await send(
      'POST',
      '/v2/models/ranked/infer',
      { 'x-caliper-priority': '2' },
      jsonInfer({ parameters: { priority: 1 } }),
    );
    expect(response.status, response.body.toString()).toBe(200);
    expect(submitted.get('ranked')).toEqual([2]);
  });

  it("gRPC: the priority parameter (uint64 or int64) in Triton's numbering; x-caliper-priority metadata in Caliper's", async () => {
    submitted.set('ranked', []);
    const request = (priority: object) => ({
      model_name: 'ranked',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [fp32(featureRow())],
      parameters: { priority },
    });
    await grpcCall('ModelInfer', request({ uint64_param: 1 }));
    await grpcCall('ModelInfer', request({ int64_param: 3 }));
    await grpcCall('ModelInfer', request({ uint64_param: 0 }));
    await grpcCall('ModelInfer', request({ uint64_param: 7 }));
    const metadata = new Metadata();
    metadata.set('x-caliper-priority', '1');
    await grpcCall('ModelInfer', request({ uint64_param: 3 }), metadata);
    expect(submitted.get('ranked')).toEqual([0, 2, undefined, undefined, 1]);
    await grpcCall('ModelInfer', { ...request({ uint64_param: 1 }), model_name: 'fraud_detector' });
  });
});

describe('fault 4: gRPC ModelReady answers ready: false for an unknown model or version', () => {
  it('unknown model, unknown version and a non-numeric version are ready: false, not NOT_FOUND', async () => {
    expect(await grpcCall('ModelReady', { name: 'no_such_model', version: '' })).toEqual({ ready: false });
    expect(await grpcCall('ModelReady', { name: 'fraud_detector', version: '99' })).toEqual({ ready: false });
    expect(await grpcCall('ModelReady', { name: 'fraud_detector', version: 'latest' })).toEqual({ ready: false });
    expect(await grpcCall('ModelReady', { name: 'fraud_detector', version: '1' })).toEqual({ ready: true });
  });

  it('REST keeps answering 404 for the same (the client reads it as not ready)', async () => {
    expect((await send('GET', '/v2/models/no_such_model/ready', {})).status).toBe(404);
    expect((await send('GET', '/v2/models/fraud_detector/versions/99/ready', {})).status).toBe(404);
  });

  it('gRPC ModelMetadata still answers NOT_FOUND for an unknown model', async () => {
    const error = await grpcFailure('ModelMetadata', { name: 'no_such_model', version: '' });
    expect(error.code).toBe(5);
  });
});

/** Writes a whole request before reading anything, as Python's http.client does; resolves with what came back. */
function writeThenRead(head: string, body: Buffer): Promise<{ response: string; writeError?: string }> {
  return new Promise((resolve) => {
    const socket = connect(server.port, '127.0.0.1');
    const received: Buffer[] = [];
    let writeError: string | undefined;
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      writeError ??= error.code ?? error.message;
    });
    socket.on('close', () =>
      resolve({ response: Buffer.concat(received).toString('latin1'), ...(writeError ? { writeError } : {}) }),
    );
    socket.on('connect', async () => {
      socket.write(head);
      const chunk = 64 * 1024;
      for (let offset = 0; offset < body.byteLength && !socket.destroyed; offset += chunk) {
        if (!socket.write(body.subarray(offset, offset + chunk))) await new Promise((r) => socket.once('drain', r));
      }
      // Half-close after writing, then read whatever the server answers.
      if (!socket.destroyed) socket.end();
    });
  });
}

describe('fault 9: an over-limit upload is answered 413 that the client can read', () => {
  it('a client writing all of a 12 MiB body (limit 1 MiB) before reading sees the 413, not a broken pipe', async () => {
    const body = Buffer.alloc(12 * BODY_LIMIT, 0x20);
    const { response, writeError } = await writeThenRead(
      `POST /v2/models/fraud_detector/infer HTTP/1.1\r\nHost: localhost\r\nInference-Header-Content-Length: 10\r\nContent-Length: ${body.byteLength}\r\n\r\n`,
      body,
    );
    expect(writeError).toBeUndefined();
    expect(response).toMatch(/^HTTP\/1\.1 413 /);
    expect(response).toMatch(/"code":"CALIPER_PAYLOAD_TOO_LARGE"/);
  });

  it('with Expect: 100-continue an over-limit Content-Length is answered 413 at once, without a 100', async () => {
    const response = await new Promise<string>((resolve) => {
      const socket = connect(server.port, '127.0.0.1', () => {
        socket.write(
          `POST /v2/models/fraud_detector/infer HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: ${3 * BODY_LIMIT}\r\n\r\n`,
        );
      });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.includes('\r\n\r\n') && /content-length: (\d+)/i.test(text)) {
          const length = Number(/content-length: (\d+)/i.exec(text)![1]);
          if (text.length >= text.indexOf('\r\n\r\n') + 4 + length) socket.destroy();
        }
      });
      socket.on('close', () => resolve(text));
    });
    expect(response).toMatch(/^HTTP\/1\.1 413 /);
    expect(response).not.toMatch(/100 Continue/);
  });

  it('with Expect: 100-continue a body within the limit is asked for (100 Continue) and answered', async () => {
    const body = Buffer.from(jsonInfer());
    const response = await new Promise<string>((resolve) => {
      const socket = connect(server.port, '127.0.0.1', () => {
        socket.write(
          `POST /v2/models/fraud_detector/infer HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: ${body.byteLength}\r\n\r\n`,
        );
      });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        const first = text === '';
        text += chunk.toString('latin1');
        if (first && text.startsWith('HTTP/1.1 100')) socket.write(body);
      });
      socket.on('close', () => resolve(text));
    });
    expect(response).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  });

  it('gRPC: a message over the limit is RESOURCE_EXHAUSTED, and the server keeps serving', async () => {
    const error = await grpcFailure('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [Buffer.alloc(2 * BODY_LIMIT)],
    });
    expect(error.code).toBe(8);
    const ok = await grpcCall('ModelInfer', {
      model_name: 'fraud_detector',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [fp32(featureRow())],
    });
    expect((ok.raw_output_contents as Buffer[])[0]!.readFloatLE(0)).toBe(expected);
  });
});

describe('fault 5: BYTES arrive byte for byte, or are refused naming the element', () => {
  // Text whose bytes a lenient decoder changes: a leading byte-order mark, a 4-byte character, combining marks, an empty element.
  const exact = [
    Buffer.from([0xef, 0xbb, 0xbf, 0x68, 0x69]),
    Buffer.from('😀 naïve', 'utf8'),
    Buffer.from('e\u0301\u200d', 'utf8'),
    Buffer.alloc(0),
    Buffer.from('日本語', 'utf8'),
    Buffer.from('{"a":1}', 'utf8'),
  ];

  function binaryBytesRequest(elements: Buffer[]): { body: Buffer; headerLength: number } {
    const raw = lengthPrefixed(elements);
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'text',
            shape: [elements.length / 3, 3],
            datatype: 'BYTES',
            parameters: { binary_data_size: raw.byteLength },
          },
        ],
        outputs: [{ name: 'same', parameters: { binary_data: true } }],
      }),
    );
    return { body: Buffer.concat([header, raw]), headerLength: header.byteLength };
  }

  it('binary extension: valid UTF-8 (BOM included) comes back with the same bytes', async () => {
    const { body, headerLength } = binaryBytesRequest(exact);
    const response = await send(
      'POST',
      '/v2/models/echo_bytes/infer',
      { 'inference-header-content-length': String(headerLength) },
      body,
    );
    expect(response.status, response.body.toString()).toBe(200);
    const raw = response.body.subarray(Number(response.headers['inference-header-content-length']));
    expect(splitLengthPrefixed(raw)).toEqual(exact);
  });

  it('JSON: the same text comes back as the same strings', async () => {
    const strings = exact.map((b) => b.toString('utf8'));
    const response = await send(
      'POST',
      '/v2/models/echo_bytes/infer',
      {},
      JSON.stringify({ inputs: [{ name: 'text', shape: [2, 3], datatype: 'BYTES', data: strings }] }),
    );
    expect(response.status, response.body.toString()).toBe(200);
    const data = (response.json.outputs as { data: string[] }[])[0]!.data;
    expect(data.map((t) => Buffer.from(t, 'utf8'))).toEqual(exact);
  });

  it('gRPC: raw_input_contents and bytes_contents come back byte for byte in raw_output_contents', async () => {
    const raw = await grpcCall('ModelInfer', {
      model_name: 'echo_bytes',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 3] }],
      raw_input_contents: [lengthPrefixed(exact)],
    });
    expect(splitLengthPrefixed((raw.raw_output_contents as Buffer[])[0]!)).toEqual(exact);
    const typed = await grpcCall('ModelInfer', {
      model_name: 'echo_bytes',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 3], contents: { bytes_contents: exact } }],
    });
    expect(splitLengthPrefixed((typed.raw_output_contents as Buffer[])[0]!)).toEqual(exact);
  });

  const refused: [string, Buffer, RegExp][] = [
    ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0x00, 0x01]), /BYTES element 4 has a NUL byte at offset 2/],
    [
      'invalid UTF-8 without NUL',
      Buffer.from([0x61, 0xc3, 0x28]),
      /BYTES element 4 is not valid UTF-8 \(byte 0xc3 at offset 1\)/,
    ],
    ['an embedded NUL', Buffer.from('x\u0000y', 'utf8'), /BYTES element 4 has a NUL byte at offset 1/],
    [
      'a lone surrogate encoded (CESU)',
      Buffer.from([0xed, 0xa0, 0x80]),
      /BYTES element 4 is not valid UTF-8 \(byte 0xed at offset 0\)/,
    ],
  ];

  it.each(refused)(
    'binary extension and gRPC: %s is a 400 / INVALID_ARGUMENT naming the element',
    async (_name, bad, message) => {
      const elements = [...exact.slice(0, 4), bad, exact[5]!];
      const { body, headerLength } = binaryBytesRequest(elements);
      const response = await send(
        'POST',
        '/v2/models/echo_bytes/infer',
        { 'inference-header-content-length': String(headerLength) },
        body,
      );
      expect(response.status).toBe(400);
      expect(String(response.json.error)).toMatch(message);
      expect(String(response.json.error)).toMatch(/inputs\.text/);
      const raw = await grpcFailure('ModelInfer', {
        model_name: 'echo_bytes',
        inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 3] }],
        raw_input_contents: [lengthPrefixed(elements)],
      });
      expect(raw.code).toBe(3);
      expect(raw.details).toMatch(message);
      const typed = await grpcFailure('ModelInfer', {
        model_name: 'echo_bytes',
        inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 3], contents: { bytes_contents: elements } }],
      });
      expect(typed.code).toBe(3);
      expect(typed.details).toMatch(message);
    },
  );

  it('JSON: a NUL character or an unpaired surrogate is a 400 naming the element', async () => {
    const nul = await send(
      'POST',
      '/v2/models/echo_bytes/infer',
      {},
      JSON.stringify({ inputs: [{ name: 'text', shape: [1, 3], datatype: 'BYTES', data: ['a', 'x\u0000y', 'c'] }] }),
    );
    expect(nul.status).toBe(400);
    expect(String(nul.json.error)).toMatch(/inputs\.text\.data\[1\]: BYTES element has a NUL character/);
    const surrogate = await send(
      'POST',
      '/v2/models/echo_bytes/infer',
      {},
      '{"inputs":[{"name":"text","shape":[1,3],"datatype":"BYTES","data":["a","b","\\ud800"]}]}',
    );
    expect(surrogate.status).toBe(400);
    expect(String(surrogate.json.error)).toMatch(/inputs\.text\.data\[2\]: BYTES element has an unpaired surrogate/);
  });

  it('/predict: a string field with a NUL is a 400 naming the field, valid text comes back unchanged', async () => {
    const bad = await send(
      'POST',
      '/models/echo_bytes/predict',
      { 'content-type': 'application/json' },
      JSON.stringify({ a: 'x\u0000y', b: 'b', c: 'c' }),
    );
    expect(bad.status).toBe(400);
    expect(String(bad.json.error)).toMatch(/^a: string has a NUL character/);
    const good = await send(
      'POST',
      '/models/echo_bytes/predict',
      { 'content-type': 'application/json' },
      JSON.stringify({ a: '\ufeffhi', b: '😀', c: '' }),
    );
    expect(good.status, good.body.toString()).toBe(200);
    expect(good.json.same).toEqual(['\ufeffhi', '😀', '']);
  });
});

describe("fault 6: model configuration in Triton's ModelConfig field names (REST and gRPC)", () => {
  it('server metadata lists model_configuration over REST and gRPC', async () => {
    expect((await send('GET', '/v2', {})).json.extensions).toContain('model_configuration');
    expect((await grpcCall('ServerMetadata', {})).extensions).toContain('model_configuration');
  });

  it('GET /v2/models/{m}[/versions/{v}]/config: max_batch_size, input/output without the batch dim, dynamic_batching, instance_group, version_policy', async () => {
    for (const path of ['/v2/models/ranked/config', '/v2/models/ranked/versions/1/config']) {
      const response = await send('GET', path, {});
      expect(response.status, response.body.toString()).toBe(200);
      expect(response.json).toMatchObject({
        name: 'ranked',
        platform: 'onnxruntime_onnx',
        backend: 'onnxruntime',
        max_batch_size: 8,
        version_policy: { latest: { num_versions: 1 } },
        input: [{ name: 'features', data_type: 'TYPE_FP32', format: 'FORMAT_NONE', dims: [width] }],
        output: [{ name: 'fraud_probability', data_type: 'TYPE_FP32', dims: [1] }],
        dynamic_batching: {
          preferred_batch_size: [],
          max_queue_delay_microseconds: 0,
          priority_levels: 3,
          default_priority_level: 1,
          default_queue_policy: { timeout_action: 'REJECT', max_queue_size: 10000, allow_timeout_override: true },
        },
        instance_group: [{ kind: 'KIND_CPU', count: 1 }],
        model_transaction_policy: { decoupled: false },
        response_cache: { enable: false },
      });
    }
    const fraud = await send('GET', '/v2/models/fraud_detector/config', {});
    expect(fraud.json).toMatchObject({
      max_batch_size: 64,
      dynamic_batching: {
        preferred_batch_size: [4, 8, 16, 32],
        max_queue_delay_microseconds: 500,
        priority_levels: 0,
        default_queue_policy: { default_timeout_microseconds: 1_000_000 },
      },
    });
  });

  it('a model that does not batch: max_batch_size 0, whole shapes, no dynamic_batching; BYTES as TYPE_STRING', async () => {
    const response = await send('GET', '/v2/models/echo_bytes/config', {});
    expect(response.status).toBe(200);
    expect(response.json.max_batch_size).toBe(0);
    expect(response.json.dynamic_batching).toBeUndefined();
    expect(response.json.input).toEqual([
      expect.objectContaining({ name: 'text', data_type: 'TYPE_STRING', dims: [-1, 3] }),
    ]);
  });

  it('unknown model or version: 404 with {"error"}; gRPC NOT_FOUND', async () => {
    expect((await send('GET', '/v2/models/no_such_model/config', {})).status).toBe(404);
    expect((await send('GET', '/v2/models/ranked/versions/7/config', {})).status).toBe(404);
    expect((await grpcFailure('ModelConfig', { name: 'no_such_model', version: '' })).code).toBe(5);
  });

  it("gRPC ModelConfig answers the same configuration (decoded with the same field numbers as Triton's model_config.proto)", async () => {
    const rest = (await send('GET', '/v2/models/ranked/config', {})).json;
    const response = await grpcCall('ModelConfig', { name: 'ranked', version: '1' });
    const config = response.config as Record<string, unknown>;
    // Enums as their wire numbers, model_config.proto's: TYPE_FP32 = 11, KIND_CPU = 2, FORMAT_NONE = 0.
    expect(config).toMatchObject({
      name: 'ranked',
      platform: 'onnxruntime_onnx',
      backend: 'onnxruntime',
      max_batch_size: 8,
      input: [{ name: 'features', data_type: 11, format: 0, dims: [width] }],
      output: [{ name: 'fraud_probability', data_type: 11, dims: [1] }],
      instance_group: [{ kind: 2, count: 1 }],
      dynamic_batching: {
        priority_levels: 3,
        default_priority_level: 1,
        default_queue_policy: { max_queue_size: 10000 },
      },
      version_policy: { latest: { num_versions: 1 } },
    });
    expect(config.parameters).toEqual(rest.parameters);
  });
});

describe('fault 7: streams honour triton_enable_empty_final_response', () => {
  interface StreamAnswer {
    error_message: string;
    infer_response: {
      id: string;
      model_name: string;
      outputs: unknown[];
      raw_output_contents: Buffer[];
      parameters: Record<string, { bool_param?: boolean }>;
    };
  }

  /** Writes the requests on one ModelStreamInfer call, half-closes, and collects every answer until the server ends the stream. */
  function stream(requests: object[]): Promise<StreamAnswer[]> {
    return new Promise((resolve, reject) => {
      const call = (grpc.ModelStreamInfer as () => NodeJS.ReadWriteStream).call(grpc);
      const answers: StreamAnswer[] = [];
      call.on('data', (answer: StreamAnswer) => answers.push(answer));
      call.on('end', () => resolve(answers));
      call.on('error', reject);
      for (const request of requests) call.write(request as never);
      call.end();
    });
  }

  const request = (id: string, parameters: Record<string, object>, model = 'fraud_detector') => ({
    model_name: model,
    id,
    inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
    raw_input_contents: [fp32(featureRow())],
    parameters,
  });
  const final = (a: StreamAnswer): boolean | undefined =>
    a.infer_response?.parameters?.triton_final_response?.bool_param;

  it('asked: the response (triton_final_response false), then an empty final response (true) with the same id, model and version', async () => {
    const answers = await stream([
      request('a', { triton_enable_empty_final_response: { bool_param: true } }),
      request('b', { triton_enable_empty_final_response: { bool_param: true } }),
    ]);
    expect(answers).toHaveLength(4);
    for (const id of ['a', 'b']) {
      const mine = answers.filter((a) => a.infer_response.id === id);
      expect(mine.map(final)).toEqual([false, true]);
      expect(mine[0]!.error_message).toBe('');
      expect(mine[0]!.infer_response.raw_output_contents[0]!.readFloatLE(0)).toBe(expected);
      expect(mine[1]!.infer_response).toMatchObject({
        model_name: 'fraud_detector',
        outputs: [],
        raw_output_contents: [],
      });
    }
  });

  it("a client that reads until it sees the flag stops after each request's own final response", async () => {
    const answers = await stream([request('x', { triton_enable_empty_final_response: { bool_param: true } })]);
    const seen: number[] = [];
    for (const a of answers) {
      if (a.infer_response.raw_output_contents.length > 0)
        seen.push(a.infer_response.raw_output_contents[0]!.readFloatLE(0));
      if (final(a)) break;
    }
    expect(seen).toEqual([expected]);
  });

  it('not asked (or false): one response per request, no flag', async () => {
    const answers = await stream([
      request('p', {}),
      request('q', { triton_enable_empty_final_response: { bool_param: false } }),
    ]);
    expect(answers).toHaveLength(2);
    for (const a of answers) expect(a.infer_response.parameters).toEqual({});
  });

  it('an error is the final response; a parameter that is not a bool_param is an error naming it', async () => {
    const answers = await stream([
      request('bad', { triton_enable_empty_final_response: { bool_param: true } }, 'no_such_model'),
      request('typed', { triton_enable_empty_final_response: { int64_param: 1 } }),
    ]);
    expect(answers).toHaveLength(2);
    const bad = answers.find((a) => a.infer_response.id === 'bad')!;
    expect(bad.error_message).toMatch(/no_such_model/);
    expect(final(bad)).toBe(true);
    const typed = answers.find((a) => a.infer_response.id === 'typed')!;
    expect(typed.error_message).toMatch(/parameters\.triton_enable_empty_final_response: expected a bool_param/);
  });
});

describe('fault 8: statistics whose counts and times belong together, stages as Triton defines them', () => {
  type Duration = { count: number; ns: number };
  interface Stat {
    inference_count: number;
    execution_count: number;
    inference_stats: Record<string, Duration>;
    batch_stats: { batch_size: number; compute_input: Duration; compute_infer: Duration; compute_output: Duration }[];
    stages: Record<string, Duration>;
  }

  const restStats = async (model: string): Promise<Stat> =>
    ((await send('GET', `/v2/models/${model}/stats`, {})).json.model_stats as Stat[])[0]!;

  /** A count of 0 never comes with time, and time is never reported without a count. */
  function expectConsistent(stat: Stat): void {
    const durations = [
      ...Object.values(stat.inference_stats),
      ...stat.batch_stats.flatMap((b) => [b.compute_input, b.compute_infer, b.compute_output]),
      ...Object.values(stat.stages),
    ];
    for (const d of durations) if (d.count === 0) expect(d.ns).toBe(0);
  }

  it('v2 and gRPC: queue, compute_input, compute_infer, compute_output each count every successful request; inference_count counts rows', async () => {
    const rows3 = JSON.stringify({
      inputs: [
        {
          name: 'features',
          shape: [3, width],
          datatype: 'FP32',
          data: [...featureRow(), ...featureRow(), ...featureRow()],
        },
      ],
    });
    expect((await send('POST', '/v2/models/counted/infer', {}, jsonInfer())).status).toBe(200);
    expect((await send('POST', '/v2/models/counted/infer', {}, rows3)).status).toBe(200);
    await grpcCall('ModelInfer', {
      model_name: 'counted',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width] }],
      raw_input_contents: [fp32(featureRow())],
    });
    expect(
      (
        await send(
          'POST',
          '/v2/models/counted/infer',
          {},
          JSON.stringify({ inputs: [{ name: 'features', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] }),
        )
      ).status,
    ).toBe(400);

    const stat = await restStats('counted');
    const s = stat.inference_stats;
    expect(s.success!.count).toBe(3);
    expect(s.fail!.count).toBe(1);
    for (const stage of ['queue', 'compute_input', 'compute_infer', 'compute_output'])
      expect(s[stage]!.count, stage).toBe(3);
    expect(s.compute_input!.ns).toBeGreaterThan(0);
    expect(s.compute_infer!.ns).toBeGreaterThan(0);
    expect(s.cache_hit).toEqual({ count: 0, ns: 0 });
    expect(stat.inference_count).toBe(5);
    expect(stat.batch_stats.reduce((sum, b) => sum + b.batch_size * b.compute_infer.count, 0)).toBe(5);
    // Caliper's own stage names beside Triton's, each with its own count.
    expect(stat.stages.validate!.count).toBe(3);
    expect(stat.stages.inference!.count).toBe(3);
    expectConsistent(stat);

    const overGrpc = ((await grpcCall('ModelStatistics', { name: 'counted', version: '' })).model_stats as Stat[])[0]!;
    expect(overGrpc.inference_count).toBe(5);
    for (const stage of ['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output']) {
      expect(overGrpc.inference_stats[stage]!.count, stage).toBe(s[stage]!.count);
    }
  });

  it('/predict with the response cache: hits count in success, queue and cache_hit, not in compute_* or inference_count', async () => {
    const body = JSON.stringify({ transaction_amount: 42, merchant_category: 'fuel', time_since_last_txn: 60 });
    for (let i = 0; i < 2; i++)
      expect((await send('POST', '/models/cached/predict', { 'content-type': 'application/json' }, body)).status).toBe(
        200,
      );
    const stat = await restStats('cached');
    const s = stat.inference_stats;
    expect(s.success!.count).toBe(2);
    expect(s.queue!.count).toBe(2);
    expect(s.cache_hit!.count).toBe(1);
    expect(s.cache_miss!.count).toBe(1);
    for (const stage of ['compute_input', 'compute_infer', 'compute_output']) {
      expect(s[stage]!.count, stage).toBe(1);
      expect(s[stage]!.ns, stage).toBeGreaterThan(0);
    }
    expect(stat.inference_count).toBe(1);
    // The cache is looked up before preprocess (issue #15: validate → features → cache → preprocess): the hit skips it.
    expect(stat.stages.cache!.count).toBe(2);
    expect(stat.stages.preprocess!.count).toBe(1);
    expectConsistent(stat);
  });
});
