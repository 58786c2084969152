import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { TempModelRepository } from '../support/temp-models.ts';
import { planBatchJob, request, tempRoot } from './batch-fixtures.ts';

/** ids [N, L] int64, mask [N, L] int64 → total [N] = Σ ids·mask per row. */
function tokenModel(): ModelProto {
  const g = new GraphBuilder('tokens', 17);
  g.input({ name: 'ids', elemType: TensorDataType.INT64, shape: ['N', 'L'] });
  g.input({ name: 'mask', elemType: TensorDataType.INT64, shape: ['N', 'L'] });
  g.initializer(tensorFromArray('axis1', [1], BigInt64Array.from([1n])));
  const [masked] = g.node('Mul', ['ids', 'mask']);
  g.node('ReduceSum', [masked!, 'axis1'], { keepdims: 0 }, ['total']);
  g.output({ name: 'total', elemType: TensorDataType.INT64, shape: ['N'] });
  return g.build();
}

const root = tempRoot('batch-variable-length');
const repo = new TempModelRepository();
let version: ModelVersion;
let model: string;

beforeAll(async () => {
  model = repo.add(
    'tokens',
    {
      name: 'tokens',
      inputs: { tokens: { type: 'array', items: 'integer', min_length: 1, max_length: 8 } },
      preprocess: {
        tensors: [{ tensor: 'ids', dtype: 'int64', columns: [{ identity: 'tokens' }], pad: 7, attention_mask: 'mask' }],
      },
      postprocess: { total: { output: 'total' } },
      batching: { max_batch_size: 8, max_queue_delay_us: 100 },
      instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
    },
    tokenModel(),
  );
  version = await loadBatchModel(model);
});

afterAll(async () => {
  await version.unload();
  repo.remove();
  root.remove();
});

describe('caliper batch over variable-length rows', () => {
  it('pads each chunk to its longest row and masks the padding', async () => {
    const rows = [[1], [2, 3, 4], [5, 6], [9, 9, 9, 9, 9]];
    const input = join(root.dir, 'tokens.jsonl');
    writeFileSync(input, `${rows.map((tokens) => JSON.stringify({ tokens })).join('\n')}\n`);
    const output = join(root.dir, 'tokens.out.jsonl');
    await runLocalBatch(
      version,
      await planBatchJob(version, request(model, input, output, { batchSize: 3, format: 'jsonl' })),
      silentProgress,
    );
    const totals = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { total: number }).total);
    expect(totals).toEqual(rows.map((r) => r.reduce((a, b) => a + b, 0)));
  });
});

/** ids [N, L] int64 → echo [N, L] = ids (Identity: every bit must come back). */
function echoModel(): ModelProto {
  const g = new GraphBuilder('echo', 17);
  g.input({ name: 'ids', elemType: TensorDataType.INT64, shape: ['N', 'L'] });
  g.node('Identity', ['ids'], {}, ['echo']);
  g.output({ name: 'echo', elemType: TensorDataType.INT64, shape: ['N', 'L'] });
  return g.build();
}

describe('caliper batch with 64-bit integers beyond 2^53', () => {
  it('reads and writes token ids with every digit (JSONL in and out)', async () => {
    const echo = repo.add(
      'echo',
      {
        name: 'echo',
        inputs: { tokens: { type: 'array', items: 'integer', min_length: 1, max_length: 8 } },
        preprocess: { tensors: [{ tensor: 'ids', dtype: 'int64', columns: [{ identity: 'tokens' }], pad: 0 }] },
        postprocess: { first: { output: 'echo', index: 0 } },
        batching: { max_batch_size: 8, max_queue_delay_us: 100 },
        instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
      },
      echoModel(),
    );
    const echoVersion = await loadBatchModel(echo);
    const big = 2n ** 60n + 1n;
    const input = join(root.dir, 'wide.jsonl');
    writeFileSync(input, `{"tokens":[${big}]}\n{"tokens":[${big + 1n},1]}\n{"tokens":[2]}\n`);
    const output = join(root.dir, 'wide.out.jsonl');
    try {
      await runLocalBatch(
        echoVersion,
        await planBatchJob(echoVersion, request(echo, input, output, { batchSize: 3, format: 'jsonl' })),
        silentProgress,
      );
    } finally {
      await echoVersion.unload();
    }
    const lines = readFileSync(output, 'utf8').trim().split('\n');
    expect(lines.map((l) => /"first":(-?\d+)/.exec(l)?.[1])).toEqual([`${big}`, `${big + 1n}`, '2']);
    expect(lines[1]).toContain(`"tokens":[${big + 1n},1]`);
  });
});
