import { Agent, createServer, request as httpRequest } from 'node:http';
import type { ModelServerProcess } from '../../src/bench/model-server-process.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing } from '../../src/server/serving.ts';
import { mulberry32 } from '../../src/system/seeded-random.ts';

const FLOAT = TensorDataType.FLOAT;

const randomMatrix = (random: () => number, rows: number, cols: number, scale: number): Float32Array =>
  Float32Array.from({ length: rows * cols }, () => (random() * 2 - 1) * scale);

/** Input width of the heavy model: requests send `x`, an array of this many numbers in [-1, 1]. */
export const HEAVY_INPUT = 64;

/**
 * A classifier whose cost is one heavy MatMul chain: x [N,64] is spread over `rows` positions ([N,rows,64], a
 * positional table added), multiplied by W1 [64,width] and W2 [width,width] (rows·width·(64+width) products per
 * request from small weights), averaged back to [N,width] and scaled into the logits by 1e-3. The decision itself is
 * the head x·H [64,2]: class 0 when x[1] > 0. With `lossy`, H also holds a weight of 1000 in both columns, so a
 * per-tensor INT8 scale rounds the deciding ±0.01 weights to 0 and the quantized model loses the decision.
 */
export function heavyMatMulModel(options: { rows: number; width: number; lossy: boolean }): ModelProto {
  const { rows, width } = options;
  const random = mulberry32(7);
  const b = new GraphBuilder('heavy_matmul', 17);
  const x = b.input({ name: 'x', elemType: FLOAT, shape: ['N', HEAVY_INPUT] });
  const shape = b.initializer(tensorFromArray('spread_shape', [3], BigInt64Array.from([-1n, 1n, BigInt(HEAVY_INPUT)])));
  const [spread] = b.node('Reshape', [x, shape]);
  const positions = b.initializer(
    tensorFromArray('positions', [rows, HEAVY_INPUT], randomMatrix(random, rows, HEAVY_INPUT, 1)),
  );
  const [placed] = b.node('Add', [spread!, positions]);
  const w1 = b.initializer(tensorFromArray('w1', [HEAVY_INPUT, width], randomMatrix(random, HEAVY_INPUT, width, 0.2)));
  const [h1] = b.node('MatMul', [placed!, w1]);
  const [r1] = b.node('Relu', [h1!]);
  const w2 = b.initializer(tensorFromArray('w2', [width, width], randomMatrix(random, width, width, 0.08)));
  const [h2] = b.node('MatMul', [r1!, w2]);
  const [r2] = b.node('Relu', [h2!]);
  const [pooled] = b.node('ReduceMean', [r2!], { axes: [1], keepdims: 0 });
  const w3 = b.initializer(tensorFromArray('w3', [width, 2], randomMatrix(random, width, 2, 0.1)));
  const [heavyLogits] = b.node('MatMul', [pooled!, w3]);
  const small = b.initializer(tensorFromArray('heavy_scale', [], Float32Array.from([1e-3])));
  const [scaled] = b.node('Mul', [heavyLogits!, small]);
  const head = new Float32Array(HEAVY_INPUT * 2);
  head[2] = options.lossy ? 0.01 : 1; // x[1] → class 0
  head[3] = options.lossy ? -0.01 : -1; // x[1] → class 1
  if (options.lossy) {
    head[0] = 1000;
    head[1] = 1000;
  }
  const h = b.initializer(tensorFromArray('head', [HEAVY_INPUT, 2], head));
  const [decision] = b.node('MatMul', [x, h]);
  b.node('Add', [decision!, scaled!], {}, ['logits']);
  b.output({ name: 'logits', elemType: FLOAT, shape: ['N', 2] });
  return b.build();
}

/** Request rows for the heavy model: x in [-1, 1] with |x[1]| >= 0.05, labelled by the sign of x[1]. */
export function heavyRows(count: number, seed: number): { x: number[]; label: number }[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const x = Array.from({ length: HEAVY_INPUT }, () => Math.round((random() * 2 - 1) * 1000) / 1000);
    if (Math.abs(x[1]!) < 0.05) x[1] = x[1]! < 0 ? -0.5 : 0.5;
    return { x, label: x[1]! > 0 ? 0 : 1 };
  });
}

/** score = amount·0.01 + user_score: a model whose cost is nothing, so the features stage is all there is. */
export function featureScoreModel(): ModelProto {
  const b = new GraphBuilder('feature_score', 17);
  const x = b.input({ name: 'features', elemType: FLOAT, shape: ['N', 2] });
  const w = b.initializer(tensorFromArray('w', [2, 1], Float32Array.from([0.01, 1])));
  b.node('MatMul', [x, w], {}, ['score']);
  b.output({ name: 'score', elemType: FLOAT, shape: ['N', 1] });
  return b.build();
}

export { startDelayProxy } from '../../examples/fraud-doctor/slow-feature-source.ts';

/**
 * A link in front of a server that holds each of its inference requests (POST) `holdMs` before passing it on (other
 * requests, as the statistics, pass at once). With `oneLane`, the requests go through one lane: each holds the lane
 * `holdMs`, and the next waits for it — a one-at-a-time step whose wait grows with the load: at one connection an
 * answer takes `holdMs` and a little, at C connections about C·`holdMs`, whatever the machine's speed. Without it,
 * every request is held `holdMs` at any load.
 */
export async function startHoldLink(
  targetPort: number,
  holdMs: number,
  { oneLane = false }: { oneLane?: boolean } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const agent = new Agent({ keepAlive: true });
  let lane: Promise<void> = Promise.resolve();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const forward = (): void => {
        const headers = { ...request.headers };
        delete headers.connection;
        const upstream = httpRequest(
          { host: '127.0.0.1', port: targetPort, method: request.method, path: request.url, headers, agent },
          (answer) => {
            const { connection: _connection, 'keep-alive': _keepAlive, ...answerHeaders } = answer.headers;
            response.writeHead(answer.statusCode ?? 502, answerHeaders);
            answer.pipe(response);
          },
        );
        upstream.on('error', (error) => {
          if (!response.headersSent) response.writeHead(502, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ error: error.message }));
        });
        upstream.end(Buffer.concat(chunks));
      };
      if (request.method !== 'POST') return forward();
      const hold = () => new Promise<void>((resolve) => setTimeout(resolve, holdMs));
      const held = oneLane ? lane.then(hold) : hold();
      if (oneLane) lane = held;
      held.then(forward);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

/**
 * A model folder served inside the test's process (startServerInProcess) and reached through a link that holds each
 * inference request `holdMs` (startHoldLink, `oneLane` as there); with `holdMs` 0, the server itself. Stopping it closes
 * the link, then the server.
 */
export async function startServerBehindHold(
  modelDir: string,
  holdMs: number,
  options: { oneLane?: boolean } = {},
): Promise<ModelServerProcess> {
  const server = await startServerInProcess(modelDir);
  if (holdMs === 0) return server;
  const link = await startHoldLink(Number(new URL(server.url).port), holdMs, options);
  return {
    url: link.url,
    stop: async () => {
      await link.close();
      await server.stop();
    },
  };
}

/**
 * A model folder served inside the test's process on an ephemeral port (a real server, without a child process's start
 * and its stop's 1 s idle grace): for doctor runs whose verdicts links of chosen delays force, where what matters is
 * which server answers, not how fast a separate process would.
 */
export async function startServerInProcess(modelDir: string): Promise<ModelServerProcess> {
  const server = await startServing({
    paths: [modelDir],
    port: 0,
    host: '127.0.0.1',
    logger: createLogger('silent'),
    idleGraceMs: 0,
  });
  return { url: server.url, stop: () => server.close() };
}
