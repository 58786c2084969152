import { describe, expect, it } from 'vitest';
import type { BatchParts } from '../../src/runtime/batch-input-buffers.ts';
import type { RunResult } from '../../src/runtime/model-instance.ts';
import type { TensorData, TensorMap } from '../../src/runtime/tensor.ts';
import { type BatchRunner, DynamicBatcher } from '../../src/scheduler/dynamic-batcher.ts';
import { batchingSpec as spec, numbers, rowsJob, tensorJob } from '../support/batcher-requests.ts';

/**
 * A runner that stacks a batch itself (BatchRunner.runRows, as an InstancePool does): the batcher hands it the jobs'
 * own tensors, in batch order, padded where model.yaml pads, and calls `run` only for a batch of one job. Outputs:
 * `y` = 10 × the first element of each row.
 */
class StackingRunner implements BatchRunner {
  runCalls: TensorMap[] = [];
  rowCalls: { parts: BatchParts; outputNames: string[] | undefined }[] = [];

  run(feeds: TensorMap): Promise<RunResult> {
    this.runCalls.push(feeds);
    return Promise.resolve(answer(feeds.x!));
  }

  runRows(parts: BatchParts, outputNames?: string[]): Promise<RunResult> {
    this.rowCalls.push({ parts, outputNames });
    const x = parts.x!;
    const rows = x.reduce((n, t) => n + t.dims[0]!, 0);
    const width = x[0]!.dims[1]!;
    const data = new Float32Array(rows * width);
    let offset = 0;
    for (const t of x) {
      data.set(t.data as Float32Array, offset);
      offset += t.data.length;
    }
    return Promise.resolve(answer({ type: 'float32', dims: [rows, width], data }));
  }
}

function answer(x: TensorData): RunResult {
  const rows = x.dims[0]!;
  const width = x.dims[1]!;
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) y[r] = 10 * (x.data as Float32Array)[r * width]!;
  return { outputs: { y: { type: 'float32', dims: [rows, 1], data: y } }, computeMs: 0 };
}

describe('a runner that stacks batches itself (runRows)', () => {
  it('gets the jobs’ own tensors in batch order and every job its own rows back; run is not called', async () => {
    const runner = new StackingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ preferredBatchSizes: [4] }), concurrency: 1 });
    const jobs = [rowsJob([1]), rowsJob([2, 3]), rowsJob([4])];
    const answers = await Promise.all(jobs.map((j) => batcher.submit(j)));
    expect(runner.runCalls).toHaveLength(0);
    expect(runner.rowCalls).toHaveLength(1);
    const parts = runner.rowCalls[0]!.parts;
    expect(Object.keys(parts)).toEqual(['x']);
    expect(parts.x).toHaveLength(3);
    parts.x!.forEach((t, i) => expect(t).toBe(jobs[i]!.inputs.x));
    expect(answers.map((a) => numbers(a.outputs.y))).toEqual([[10], [20, 30], [40]]);
    expect(answers.map((a) => a.batchSize)).toEqual([4, 4, 4]);
  });

  it('passes the output names the jobs share, and none when they differ', async () => {
    const runner = new StackingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ preferredBatchSizes: [2, 4] }), concurrency: 1 });
    await Promise.all([
      batcher.submit(rowsJob([1], { outputNames: ['y'] })),
      batcher.submit(rowsJob([2], { outputNames: ['y'] })),
    ]);
    await Promise.all([
      batcher.submit(rowsJob([1], { outputNames: ['y'] })),
      batcher.submit(rowsJob([2], { outputNames: ['z', 'y'] })),
    ]);
    expect(runner.rowCalls.map((c) => c.outputNames)).toEqual([['y'], undefined]);
  });

  it('runs a batch of one job through run, with the job’s own inputs', async () => {
    const runner = new StackingRunner();
    const batcher = new DynamicBatcher(runner, { batching: spec({ preferredBatchSizes: [1] }), concurrency: 1 });
    const job = rowsJob([7, 8]);
    const answer = await batcher.submit(job);
    expect(runner.rowCalls).toHaveLength(0);
    expect(runner.runCalls).toHaveLength(1);
    expect(runner.runCalls[0]).toBe(job.inputs);
    expect(numbers(answer.outputs.y)).toEqual([70, 80]);
  });

  it('pads a padded input’s parts to the longest row before handing them over; other inputs go as they are', async () => {
    const runner = new StackingRunner();
    const batcher = new DynamicBatcher(runner, {
      batching: spec({ preferredBatchSizes: [2] }),
      concurrency: 1,
      padding: new Map([['x', -1]]),
    });
    const short = tensorJob({ type: 'float32', dims: [1, 2], data: new Float32Array([5, 6]) });
    const long = tensorJob({ type: 'float32', dims: [1, 3], data: new Float32Array([7, 8, 9]) });
    await Promise.all([batcher.submit(short), batcher.submit(long)]);
    const parts = runner.rowCalls[0]!.parts.x!;
    expect(parts.map((t) => t.dims)).toEqual([
      [1, 3],
      [1, 3],
    ]);
    expect(parts.map(numbers)).toEqual([
      [5, 6, -1],
      [7, 8, 9],
    ]);
    expect(parts[1]).toBe(long.inputs.x);
  });
});
