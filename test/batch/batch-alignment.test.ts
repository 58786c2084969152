import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { CaliperError } from '../../src/errors.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { TempModelRepository } from '../support/temp-models.ts';
import { planBatchJob, request, tempRoot } from './batch-fixtures.ts';

/** x [N, 2] → dets: the rows whose sum is positive (Compress on axis 0), declared [N, 2] as if it were row-aligned. */
function mislabeledDetector(): ModelProto {
  const g = new GraphBuilder('liar', 17);
  g.input({ name: 'x', elemType: TensorDataType.FLOAT, shape: ['N', 2] });
  g.initializer(tensorFromArray('axis1', [1], BigInt64Array.from([1n])));
  const [sums] = g.node('ReduceSum', ['x', 'axis1'], { keepdims: 0 });
  g.initializer(tensorFromArray('zero', [], Float32Array.from([0])));
  const [keep] = g.node('Greater', [sums!, 'zero']);
  g.node('Compress', ['x', keep!], { axis: 0 }, ['dets']);
  g.output({ name: 'dets', elemType: TensorDataType.FLOAT, shape: ['N', 2] });
  return g.build();
}

const root = tempRoot('batch-alignment');
const repo = new TempModelRepository();
let version: ModelVersion;
let model: string;

beforeAll(async () => {
  model = repo.add(
    'liar',
    {
      name: 'liar',
      inputs: { x: { type: 'array', items: 'number', length: 2 } },
      preprocess: { tensor: 'x', columns: [{ identity: 'x' }] },
      postprocess: { dets: { output: 'dets' } },
      batching: { max_batch_size: 8, max_queue_delay_us: 100 },
      instances: { count: 1, kind: 'in_thread', intra_op_threads: 1 },
    },
    mislabeledDetector(),
  );
  version = await loadBatchModel(model);
});

afterAll(async () => {
  await version.unload();
  repo.remove();
  root.remove();
});

describe('caliper batch chunks', () => {
  it('split outputs back to file rows only when each output has one row per input row', async () => {
    const good = join(root.dir, 'good.jsonl');
    writeFileSync(good, '{"x":[1,2]}\n{"x":[3,4]}\n{"x":[5,6]}\n');
    const output = join(root.dir, 'good.out.jsonl');
    await runLocalBatch(
      version,
      await planBatchJob(version, request(model, good, output, { batchSize: 3, format: 'jsonl' })),
      silentProgress,
    );
    expect(
      readFileSync(output, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { dets: number[] }).dets),
    ).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);

    const bad = join(root.dir, 'bad.jsonl');
    writeFileSync(bad, '{"x":[1,2]}\n{"x":[-3,-4]}\n{"x":[5,6]}\n');
    const failed = runLocalBatch(
      version,
      await planBatchJob(
        version,
        request(model, bad, join(root.dir, 'bad.out.jsonl'), { batchSize: 3, format: 'jsonl' }),
      ),
      silentProgress,
    );
    await expect(failed).rejects.toMatchObject({ code: 'CALIPER_OUTPUT_NOT_ALIGNED' } satisfies Partial<CaliperError>);
    await expect(failed).rejects.toThrow(/output "dets" has shape \[2, 2\] for a batch of 3 rows/);
  });
});
