import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { describeBatchModel } from '../../src/batch/batch-model-description.ts';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';
import { fraudModelDir, planBatchJob, request, tempRoot } from './batch-fixtures.ts';

/**
 * The `--queue` submitter plans a job from model.yaml and the ONNX file's declared inputs and outputs
 * (describeBatchModel), without loading ONNX Runtime: the workers load the model.
 */
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-submitter');
let model: string;
let redis: PrivateRedis & { dispose(): Promise<void> };

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  redis = await startPrivateRedis();
});

afterAll(async () => {
  await redis?.dispose();
  root.remove();
});

/** Loaded by the child before the CLI: says on exit whether onnxruntime-node was ever required. */
const ORT_PROBE = `import { createRequire } from 'node:module';
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => {
  const loaded = Object.keys(cache).some((k) => k.includes('onnxruntime-node'));
  process.stderr.write(loaded ? '\\n[ort] loaded\\n' : '\\n[ort] not loaded\\n');
});
`;

describe('the --queue submitter', () => {
  it('plans from the declared signature: the same inputs, outputs and job spec as with the model loaded', async () => {
    const input = await generateFraudData({ rows: 500, out: join(root.dir, 'in.parquet'), seed: 31 });
    const described = await describeBatchModel(model);
    const loaded = await loadBatchModel(model);
    try {
      expect(described.signature.inputs).toEqual(loaded.signature.inputs);
      expect(described.signature.outputs).toEqual(loaded.signature.outputs);
      expect({ name: described.name, version: described.version }).toEqual({
        name: loaded.name,
        version: loaded.version,
      });
      const req = request(model, input, join(root.dir, 'out.parquet'), { mode: 'distributed' });
      expect(await planBatchJob(described, req)).toEqual(await planBatchJob(loaded, req));
    } finally {
      await loaded.unload();
    }
  });

  it('queues a detached job without loading ONNX Runtime (a local job loads it)', async () => {
    const input = await generateFraudData({ rows: 2_000, out: join(root.dir, 'queued.parquet'), seed: 32 });
    const probe = join(root.dir, 'ort-probe.mjs');
    writeFileSync(probe, ORT_PROBE);
    const run = (extra: string[], output: string) =>
      spawnSync(
        process.execPath,
        ['--import', probe, CLI, 'batch', '--model', model, '--input', input, '--output', output, '--json', ...extra],
        { encoding: 'utf8' },
      );
    const queued = run(['--queue', redis.url, '--detach'], join(root.dir, 'queued-out.parquet'));
    expect(queued.status, queued.stderr).toBe(0);
    expect(JSON.parse(queued.stdout)).toMatchObject({ state: 'running', doneShards: 0, totalRows: 2_000 });
    expect(queued.stderr).toContain('[ort] not loaded');
    // The probe does see ONNX Runtime where it is loaded.
    const local = run([], join(root.dir, 'local-out.parquet'));
    expect(local.status, local.stderr).toBe(0);
    expect(local.stderr).toContain('[ort] loaded');
  }, 60_000);

  it('a model.yaml that does not fit the model fails at submission, naming the field, and queues nothing', async () => {
    const broken = fraudModelDir(join(root.dir, 'broken'));
    const yaml = join(broken, 'model.yaml');
    writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('tensor: features', 'tensor: feats'));
    const input = await generateFraudData({ rows: 100, out: join(root.dir, 'small.parquet'), seed: 33 });
    const run = spawnSync(
      process.execPath,
      [
        CLI,
        'batch',
        '--model',
        broken,
        '--input',
        input,
        '--output',
        join(root.dir, 'broken-out.parquet'),
        '--queue',
        redis.url,
        '--detach',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/preprocess tensor feats: the model has no input named "feats"/);
  }, 60_000);

  it('opens the queue while it plans: a --queue that is no redis:// URL still stops the job with its message', async () => {
    const input = await generateFraudData({ rows: 100, out: join(root.dir, 'bad-url.parquet'), seed: 34 });
    const run = spawnSync(
      process.execPath,
      [CLI, 'batch', '--model', model, '--input', input, '--output', join(root.dir, 'bad-url-out.parquet')].concat([
        '--queue',
        'http://127.0.0.1:1',
        '--json',
      ]),
      { encoding: 'utf8', timeout: 50_000 },
    );
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).toContain('--queue: expected a redis:// URL, got "http://127.0.0.1:1"');
    expect(run.stderr).not.toMatch(/unhandled/i);
  }, 60_000);
});
