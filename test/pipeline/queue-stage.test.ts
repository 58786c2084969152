import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { runLocalBatch, silentProgress } from '../../src/batch/batch-runner.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { STAGES } from '../../src/pipeline/stage-list.ts';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { fraudModelDir, planBatchJob, request, tempRoot } from '../batch/batch-fixtures.ts';

/**
 * The queue stage of src/pipeline/stage-list.ts is the one place a request reaches a version's scheduler: every
 * protocol, caliper batch's columnar path included, enters the stage list and is handed to the scheduler there.
 */

const SRC = join(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the scheduler edge', () => {
  it('is called from src/pipeline/scheduled-inference.ts only, which only the stage list imports', () => {
    const submitting: string[] = [];
    const importing: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const text = readFileSync(file, 'utf8');
      const name = relative(SRC, file);
      if (/\.scheduler\.submit\(/.test(text)) submitting.push(name);
      if (/from '[./]*(pipeline\/)?scheduled-inference\.ts'/.test(text)) importing.push(name);
    }
    expect(submitting).toEqual(['pipeline/scheduled-inference.ts']);
    expect(importing).toEqual(['pipeline/stage-list.ts']);
  });
});

describe('caliper batch, columnar path', () => {
  const root = tempRoot('queue-stage');
  let version: ModelVersion;
  let model: string;
  let input: string;

  beforeAll(async () => {
    model = fraudModelDir(root.dir);
    version = await loadBatchModel(model);
    input = await generateFraudData({ rows: 600, out: join(root.dir, 'clean.parquet'), seed: 9, badFraction: 0 });
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await version?.unload();
    root.remove();
  });

  it('hands every batch to the scheduler from the stage list’s queue stage, with the row rules', async () => {
    const queue = STAGES.find((stage) => stage.name === 'queue')!;
    let inQueueStage = false;
    const queued: { rowRules: boolean; rows: number }[] = [];
    const run = queue.run.bind(queue);
    vi.spyOn(queue, 'run').mockImplementation((ctx) => {
      queued.push({ rowRules: ctx.rowRules, rows: ctx.rowCount });
      inQueueStage = true;
      try {
        return run(ctx);
      } finally {
        inQueueStage = false;
      }
    });
    const submitted: boolean[] = [];
    const submit = version.scheduler.submit.bind(version.scheduler);
    vi.spyOn(version.scheduler, 'submit').mockImplementation((job) => {
      submitted.push(inQueueStage);
      return submit(job);
    });

    const spec = await planBatchJob(
      version,
      request(model, input, join(root.dir, 'out.parquet'), { batchSize: 200, partRows: 600 }),
    );
    const summary = await runLocalBatch(version, spec, silentProgress, { rowPath: false });
    expect(summary.rows).toBe(600);
    expect(summary.errors).toBe(0);
    // Three batches of 200 file rows, each through the queue stage (built tensors: the model's row rules apply).
    expect(queued).toEqual([
      { rowRules: true, rows: 200 },
      { rowRules: true, rows: 200 },
      { rowRules: true, rows: 200 },
    ]);
    expect(submitted).toEqual([true, true, true]);
  });
});
