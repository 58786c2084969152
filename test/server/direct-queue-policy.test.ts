import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { TempModelRepository } from '../support/temp-models.ts';

const WIDTH = 512;
const LAYERS = 400;

/** x [N, 2] → y [N, 1] through LAYERS products with one 512×512 matrix: tens of milliseconds per run on one core. */
function slowModel(): ModelProto {
  const g = new GraphBuilder('slow', 17);
  g.input({ name: 'x', elemType: TensorDataType.FLOAT, shape: ['N', 2] });
  g.initializer(tensorFromArray('w_in', [2, WIDTH], new Float32Array(2 * WIDTH).fill(0.5)));
  g.initializer(tensorFromArray('w', [WIDTH, WIDTH], new Float32Array(WIDTH * WIDTH).fill(1 / WIDTH)));
  g.initializer(tensorFromArray('w_out', [WIDTH, 1], new Float32Array(WIDTH).fill(1 / WIDTH)));
  let h = g.node('MatMul', ['x', 'w_in'])[0]!;
  for (let i = 0; i < LAYERS; i++) h = g.node('MatMul', [h, 'w'])[0]!;
  g.node('MatMul', [h, 'w_out'], {}, ['y']);
  g.output({ name: 'y', elemType: TensorDataType.FLOAT, shape: ['N', 1] });
  return g.build();
}

/** One worker instance, so two jobs run at once (one computing, one in the worker's hand) and the rest wait. */
const config = (name: string, batching: Record<string, unknown>) => ({
  name,
  inputs: { a: { type: 'number' }, b: { type: 'number' } },
  preprocess: { tensor: 'x', columns: [{ identity: 'a' }, { identity: 'b' }] },
  postprocess: { y: { output: 'y', index: 0 } },
  instances: { count: 1, kind: 'worker', intra_op_threads: 1 },
  batching,
});

let repo: TempModelRepository;
let server: RunningServer;

beforeAll(async () => {
  repo = new TempModelRepository();
  const model = slowModel();
  repo.add('direct', config('direct', { enabled: false, max_queue_size: 2, timeout_ms: 10_000 }), model);
  repo.add('batched', config('batched', { max_batch_size: 1, max_queue_size: 2, timeout_ms: 10_000 }), model);
  server = await startServing({ paths: [repo.dir], port: 0, logger: quietLogger() });
}, 60_000);

afterAll(async () => {
  await server?.close();
  repo?.remove();
});

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { error?: string; y?: number };
}

/** `count` requests at once to `model`, each with `headers`. */
async function burst(model: string, count: number, headers: Record<string, string> = {}): Promise<Answer[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const response = await fetch(`${server.url}/models/${model}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ a: i, b: 1 }),
      });
      return {
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        body: (await response.json()) as Answer['body'],
      };
    }),
  );
}

describe('batching off: the same queue bound and deadlines as the batcher', () => {
  it('answers a full queue 503 with Retry-After and the batcher’s message, and serves the requests it queued', async () => {
    for (const model of ['direct', 'batched']) {
      const answers = await burst(model, 24);
      const full = answers.filter((a) => a.status === 503);
      expect(full.length, model).toBeGreaterThan(0);
      for (const a of full) {
        expect(a.body.error).toBe(
          `model "${model}": queue is full (2 requests waiting, batching.max_queue_size); retry later`,
        );
        expect(Number(a.retryAfter)).toBeGreaterThan(0);
      }
      expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(2);
      expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true);
    }
  }, 60_000);

  it('answers 504 to a request whose deadline passes while it waits, without running it', async () => {
    const before = await rowsRun('direct');
    const answers = await burst('direct', 4, { 'x-caliper-timeout-ms': '5' });
    const late = answers.filter((a) => a.status === 504);
    expect(late.length).toBeGreaterThan(0);
    for (const a of late)
      expect(a.body.error).toMatch(/^model "direct": deadline passed after \d+\.\d ms in the queue/);
    // Only the requests that ran were counted as runs.
    expect((await rowsRun('direct')) - before).toBe(4 - late.length);
  }, 60_000);
});

async function rowsRun(model: string): Promise<number> {
  const body = (await (await fetch(`${server.url}/v2/models/${model}/stats`)).json()) as {
    model_stats: { batch_stats: { batch_size: number; compute_infer: { count: number } }[] }[];
  };
  return body.model_stats[0]!.batch_stats.reduce((sum, b) => sum + b.batch_size * b.compute_infer.count, 0);
}
