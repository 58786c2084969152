import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { TempModelRepository } from '../support/temp-models.ts';

/** ids INT64 [N, 1] → vec = embedding rows (rows 0..rows-1 hold [10r, 10r + 1]). */
function embeddingModel(rows: number): ModelProto {
  const g = new GraphBuilder('embedding', 17);
  g.input({ name: 'ids', elemType: TensorDataType.INT64, shape: ['N', 1] });
  g.initializer(
    tensorFromArray(
      'table',
      [rows, 2],
      Float32Array.from({ length: rows * 2 }, (_, i) => 10 * Math.floor(i / 2) + (i % 2)),
    ),
  );
  g.node('Gather', ['table', 'ids'], { axis: 0 }, ['vec']);
  g.output({ name: 'vec', elemType: TensorDataType.FLOAT, shape: ['N', 1, 2] });
  return g.build();
}

const config = (name: string, unknown?: number | 'error') => ({
  name,
  inputs: { color: { type: 'string' } },
  preprocess: {
    tensor: 'ids',
    dtype: 'int64',
    columns: [{ lookup: 'color', table: ['red', 'green', 'blue'], ...(unknown !== undefined ? { unknown } : {}) }],
  },
  postprocess: { vec: { output: 'vec' } },
  instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
});

let repo: TempModelRepository;
let server: RunningServer;
const warnings: string[] = [];

beforeAll(async () => {
  repo = new TempModelRepository();
  repo.add('negative', config('negative', -1), embeddingModel(3));
  repo.add('strict', config('strict'), embeddingModel(3));
  repo.add('reserved', config('reserved', 3), embeddingModel(4));
  server = await startServing({
    paths: [repo.dir],
    port: 0,
    logger: pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          warnings.push(line);
        },
      },
    ),
  });
});

afterAll(async () => {
  await server?.close();
  repo?.remove();
});

async function predict(model: string, color: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.url}/models/${model}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ color }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('lookup unknown categories feeding an index', () => {
  it('warns at load when unknown is negative and the lookup feeds an integer (index) tensor', () => {
    const warning = warnings.find((w) => w.includes('model negative version 1') && w.includes('unknown: -1'));
    expect(warning).toContain('preprocess tensor ids (int64) looks up color');
    expect(warnings.some((w) => w.includes('model strict') || w.includes('model reserved'))).toBe(false);
  });

  it('refuses unseen categories by default, or maps them to the reserved row named by unknown', async () => {
    const strict = await predict('strict', 'purple');
    expect(strict.status).toBe(400);
    expect(strict.json.error).toMatch(/^color: unknown category "purple" \(expected one of red, green, blue\)/);
    expect((await predict('reserved', 'purple')).json.vec).toEqual([30, 31]);
    expect((await predict('reserved', 'green')).json.vec).toEqual([10, 11]);
    // What the warning is about: -1 indexes from the end, the last real row.
    expect((await predict('negative', 'purple')).json.vec).toEqual([20, 21]);
  });
});
