import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcInferenceClient } from '../../src/client/grpc-client.ts';
import { RestInferenceClient } from '../../src/client/rest-client.ts';
import { GraphBuilder } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

/** x INT64 [N, 2] → y = x; u UINT64 [N, 2] → v = u (Identity: every bit must come back). */
function identityModel(): ModelProto {
  const g = new GraphBuilder('wide', 17);
  g.input({ name: 'x', elemType: TensorDataType.INT64, shape: ['N', 2] });
  g.input({ name: 'u', elemType: TensorDataType.UINT64, shape: ['N', 2] });
  g.node('Identity', ['x'], {}, ['y']);
  g.node('Identity', ['u'], {}, ['v']);
  g.output({ name: 'y', elemType: TensorDataType.INT64, shape: ['N', 2] });
  g.output({ name: 'v', elemType: TensorDataType.UINT64, shape: ['N', 2] });
  return g.build();
}

/** amount FLOAT [N, 1] → out = amount: a model no part of which takes a 64-bit integer. */
function floatModel(): ModelProto {
  const g = new GraphBuilder('plain', 17);
  g.input({ name: 'amount', elemType: TensorDataType.FLOAT, shape: ['N', 1] });
  g.node('Identity', ['amount'], {}, ['out']);
  g.output({ name: 'out', elemType: TensorDataType.FLOAT, shape: ['N', 1] });
  return g.build();
}

const X = [2n ** 60n + 1n, -(2n ** 63n)];
const U = [2n ** 64n - 1n, 2n ** 53n + 1n];

let repo: TempModelRepository;
let server: RunningServer;

beforeAll(async () => {
  repo = new TempModelRepository();
  /** x → y and u → v through int64/uint64 tensors built by /predict's preprocess, with the given extra settings. */
  const wide = (name: string, extra: Record<string, unknown> = {}): void => {
    repo.add(
      name,
      {
        name,
        inputs: {
          x: { type: 'array', items: 'integer', length: 2 },
          u: { type: 'array', items: 'integer', length: 2, minimum: 0 },
        },
        preprocess: {
          tensors: [
            { tensor: 'x', dtype: 'int64', columns: [{ identity: 'x' }] },
            { tensor: 'u', dtype: 'uint64', columns: [{ identity: 'u' }] },
          ],
        },
        postprocess: { y: { output: 'y' }, v: { output: 'v' } },
        instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
        ...extra,
      },
      identityModel(),
    );
  };
  wide('wide');
  // The same model behind a response cache and the dynamic batcher: neither may round a 64-bit value.
  wide('wide_cached', { batching: { max_batch_size: 8, max_queue_delay_us: 2000 }, cache: { max_entries: 10 } });
  repo.add(
    'plain',
    {
      name: 'plain',
      inputs: { amount: { type: 'number', maximum: 1000 } },
      preprocess: { tensors: [{ tensor: 'amount', columns: [{ identity: 'amount' }] }] },
      postprocess: { out: { output: 'out' } },
      instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
    },
    floatModel(),
  );
  server = await startServing({ paths: [repo.dir], port: 0, grpcPort: 0, logger: pino({ level: 'silent' }) });
});

afterAll(async () => {
  await server?.close();
  repo?.remove();
});

async function postText(
  path: string,
  text: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', headers, body: text });
  return { status: response.status, text: await response.text() };
}

describe('INT64 and UINT64 exact end to end', () => {
  it('v2 JSON reads and writes every digit', async () => {
    const body = `{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":[${X.join(',')}]},{"name":"u","datatype":"UINT64","shape":[1,2],"data":[${U.join(',')}]}]}`;
    const answer = await postText('/v2/models/wide/infer', body);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain(`"data":[${X.join(',')}]`);
    expect(answer.text).toContain(`"data":[${U.join(',')}]`);
  });

  it('v2 JSON refuses 64-bit values outside the type, naming the element', async () => {
    const over = await postText(
      '/v2/models/wide/infer',
      `{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":[1,9223372036854775808]},{"name":"u","datatype":"UINT64","shape":[1,2],"data":[1,2]}]}`,
    );
    expect(over.status).toBe(400);
    expect(JSON.parse(over.text).error).toBe(
      'inputs.x.data[1]: expected an integer from -9223372036854775808 to 9223372036854775807 (INT64), got 9223372036854775808',
    );
    const negative = await postText(
      '/v2/models/wide/infer',
      `{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":[1,2]},{"name":"u","datatype":"UINT64","shape":[1,2],"data":[-1,2]}]}`,
    );
    expect(negative.status).toBe(400);
    expect(JSON.parse(negative.text).error).toMatch(
      /^inputs\.u\.data\[0\]: expected an integer from 0 to 18446744073709551615 \(UINT64\), got -1/,
    );
    const rounded = await postText(
      '/v2/models/wide/infer',
      `{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":[1,1.5e17]},{"name":"u","datatype":"UINT64","shape":[1,2],"data":[1,2]}]}`,
    );
    expect(rounded.status).toBe(400);
    expect(JSON.parse(rounded.text).error).toContain(
      'inputs.x.data[1]: expected an integer (INT64) written with all its digits',
    );
  });

  it('binary input answers exact JSON, and the Caliper clients return exact BigInt64Array/BigUint64Array', async () => {
    const inputs = [
      { name: 'x', datatype: 'INT64' as const, shape: [1, 2], data: BigInt64Array.from(X) },
      { name: 'u', datatype: 'UINT64' as const, shape: [1, 2], data: BigUint64Array.from(U) },
    ];
    for (const binary of [true, false]) {
      const client = new RestInferenceClient({ url: server.url, binary });
      try {
        const result = await client.infer('wide', inputs);
        expect([...(result.outputs.y!.data as BigInt64Array)]).toEqual(X);
        expect([...(result.outputs.v!.data as BigUint64Array)]).toEqual(U);
      } finally {
        client.close();
      }
    }
    const header = JSON.stringify({
      inputs: [
        { name: 'x', datatype: 'INT64', shape: [1, 2], parameters: { binary_data_size: 16 } },
        { name: 'u', datatype: 'UINT64', shape: [1, 2], parameters: { binary_data_size: 16 } },
      ],
    });
    const bytes = Buffer.concat([
      Buffer.from(header),
      Buffer.from(BigInt64Array.from(X).buffer),
      Buffer.from(BigUint64Array.from(U).buffer),
    ]);
    const response = await fetch(`${server.url}/v2/models/wide/infer`, {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(Buffer.byteLength(header)),
      },
      body: bytes,
    });
    const text = await response.text();
    expect(text).toContain(`"data":[${X.join(',')}]`);
    expect(text).toContain(`"data":[${U.join(',')}]`);
    const grpc = new GrpcInferenceClient({ address: `127.0.0.1:${server.grpc!.port}` });
    try {
      const result = await grpc.infer('wide', inputs);
      expect([...(result.outputs.y!.data as BigInt64Array)]).toEqual(X);
      expect([...(result.outputs.v!.data as BigUint64Array)]).toEqual(U);
    } finally {
      grpc.close();
    }
  });

  it('/predict reads and writes every digit of INT64/UINT64 fields, cached and batched alike', async () => {
    const body = `{"x":[${X.join(',')}],"u":[${U.join(',')}]}`;
    for (const model of ['wide', 'wide_cached', 'wide_cached']) {
      const answer = await postText(`/models/${model}/predict`, body);
      expect(answer.status, answer.text).toBe(200);
      expect(answer.text).toContain(`"y":[${X.join(',')}]`);
      expect(answer.text).toContain(`"v":[${U.join(',')}]`);
    }
    // Two different requests in one batch keep their own exact values.
    const other = [2n ** 62n + 3n, 2n ** 53n + 1n];
    const [a, b] = await Promise.all([
      postText('/models/wide_cached/predict', `{"instances":[{"x":[${other.join(',')}],"u":[1,2]}]}`),
      postText('/models/wide_cached/predict', `{"x":[${X.join(',')}],"u":[3,${U[0]}]}`),
    ]);
    expect(a.text).toContain(`"y":[${other.join(',')}]`);
    expect(b.text).toContain(`"y":[${X.join(',')}]`);
    expect(b.text).toContain(`"v":[3,${U[0]}]`);
  });

  it('/predict refuses 64-bit values outside the tensor type, naming the element', async () => {
    const over = await postText('/models/wide/predict', `{"x":[1,9223372036854775808],"u":[1,2]}`);
    expect(over.status).toBe(400);
    expect(JSON.parse(over.text).error).toBe(
      'x[1]: 9223372036854775808 does not fit preprocess tensor x (int64: -9223372036854775808 to 9223372036854775807)',
    );
    const negative = await postText('/models/wide/predict', `{"x":[1,2],"u":[1,18446744073709551616]}`);
    expect(negative.status).toBe(400);
    expect(JSON.parse(negative.text).error).toBe(
      'u[1]: 18446744073709551616 does not fit preprocess tensor u (uint64: 0 to 18446744073709551615)',
    );
  });

  it('reads the body of a model that takes no 64-bit integer as JSON.parse does, without scanning it for one', async () => {
    expect(server.repository.takesInt64('wide')).toBe(true);
    expect(server.repository.takesInt64('plain')).toBe(false);
    // A name not served: read exactly, as before (the request is refused later).
    expect(server.repository.takesInt64('no_such_model')).toBe(true);
    // A number field reads a 20-digit literal as the nearest double either way; its error now names that double.
    const plain = await postText('/models/plain/predict', '{"amount": 12345678901234567890}');
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.text).error).toBe('amount: expected a number <= 1000, got number 12345678901234567000');
    const fits = await postText('/models/plain/predict', '{"amount": 12.5}');
    expect(JSON.parse(fits.text)).toMatchObject({ out: 12.5 });
    // A model that takes one still reads every digit.
    const wide = await postText('/models/wide/predict', `{"x": [1, 2], "u": [1, ${2n ** 64n}]}`);
    expect(wide.status).toBe(400);
    expect(JSON.parse(wide.text).error).toContain(`u[1]: ${2n ** 64n} does not fit`);
  });

  it('gRPC int64_contents and uint64_contents beyond 2^53 are read exactly', async () => {
    const definition = loadSync(INFERENCE_PROTO_PATH, { keepCase: true, longs: String, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(definition) as unknown as {
      inference: {
        GRPCInferenceService: new (
          address: string,
          creds: ReturnType<typeof credentials.createInsecure>,
        ) => Client & {
          ModelInfer(
            request: object,
            callback: (
              error: ServiceError | null,
              answer: { raw_output_contents: Buffer[]; outputs: { name: string }[] },
            ) => void,
          ): void;
        };
      };
    };
    const client = new pkg.inference.GRPCInferenceService(
      `127.0.0.1:${server.grpc!.port}`,
      credentials.createInsecure(),
    );
    try {
      const response = await new Promise<{ raw_output_contents: Buffer[]; outputs: { name: string }[] }>(
        (resolve, reject) => {
          client.ModelInfer(
            {
              model_name: 'wide',
              inputs: [
                { name: 'x', datatype: 'INT64', shape: [1, 2], contents: { int64_contents: X.map(String) } },
                { name: 'u', datatype: 'UINT64', shape: [1, 2], contents: { uint64_contents: U.map(String) } },
              ],
            },
            (error: ServiceError | null, answer: { raw_output_contents: Buffer[]; outputs: { name: string }[] }) =>
              error ? reject(error) : resolve(answer),
          );
        },
      );
      const byName = Object.fromEntries(response.outputs.map((o, i) => [o.name, response.raw_output_contents[i]!]));
      const y = byName.y!;
      const v = byName.v!;
      expect([y.readBigInt64LE(0), y.readBigInt64LE(8)]).toEqual(X);
      expect([v.readBigUInt64LE(0), v.readBigUInt64LE(8)]).toEqual(U);
    } finally {
      client.close();
    }
  });
});
