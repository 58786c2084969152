import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { expect } from 'vitest';
import { loadBatchModel } from '../../src/batch/batch-model.ts';
import { planBatchJob, type BatchRequest } from '../../src/batch/batch-plan.ts';
import type { ModelVersion } from '../../src/lifecycle/model-version.ts';

/** The CLI as the tests run it (bin/caliper.js: the TypeScript sources through tsx). */
export const CALIPER_CLI = join(import.meta.dirname, '../../bin/caliper.js');

export const FRAUD_EXAMPLE = join(import.meta.dirname, '../../examples/fraud-detector');

/** A private copy of the fraud detector's version 1 (model.yaml + 1/model.onnx), so other versions don't change the tests. */
export function fraudModelDir(root: string): string {
  const dir = join(root, 'fraud_detector');
  mkdirSync(join(dir, '1'), { recursive: true });
  copyFileSync(join(FRAUD_EXAMPLE, 'model.yaml'), join(dir, 'model.yaml'));
  copyFileSync(join(FRAUD_EXAMPLE, '1', 'model.onnx'), join(dir, '1', 'model.onnx'));
  return dir;
}

export function tempRoot(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `caliper-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs SQL over DuckDB (e.g. against read_parquet of an output) and returns the rows as objects. */
export async function query(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

export async function loadFraudModel(root: string): Promise<ModelVersion> {
  return loadBatchModel(fraudModelDir(root));
}

export function request(model: string, input: string, output: string, extra: Partial<BatchRequest> = {}): BatchRequest {
  return { model, input, output, batchSize: 256, partRows: 1000, onError: 'skip', mode: 'local', ...extra };
}

export { planBatchJob };

/** A `caliper batch --json` run with the halves forced on, off, or left to the defaults, as the halves tests read it. */
export interface HalvesRun {
  summary: { rows: number; outputRows: number; errors: number; path: string };
  /** The one pass ran in two halves side by side (CALIPER_BATCH_PROFILE=1's line). */
  halves: boolean;
  /** The output is the input's own column chunks with the predictions added (parquet-stitch.ts). */
  stitched: boolean;
  /** The second half was scored on the worker thread started for it (src/batch/columnar/half-scorer.ts). */
  secondOnThread: boolean;
  stderr: string;
}

/**
 * Runs `caliper batch --model MODEL --json --overwrite ARGS` (bin/caliper.js) with CALIPER_BATCH_HALVES_BYTES=1 ('on':
 * every input counts as large), 'off', or unset ('default'); expects exit 0.
 */
export function batchWithHalves(
  model: string,
  args: string[],
  halves: 'on' | 'off' | 'default',
  extraEnv: NodeJS.ProcessEnv = {},
): HalvesRun {
  // 'always': a Parquet job's second half goes to its worker thread however long the thread takes to start.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CALIPER_BATCH_PROFILE: '1',
    CALIPER_BATCH_SECOND_HALF_THREAD: 'always',
    ...extraEnv,
  };
  if (halves === 'default') delete env.CALIPER_BATCH_HALVES_BYTES;
  else env.CALIPER_BATCH_HALVES_BYTES = halves === 'on' ? '1' : 'off';
  const run = spawnSync(process.execPath, [CALIPER_CLI, 'batch', '--model', model, '--json', '--overwrite', ...args], {
    encoding: 'utf8',
    env,
  });
  expect(run.status, run.stderr).toBe(0);
  return {
    summary: JSON.parse(run.stdout.trim().split('\n').pop()!) as HalvesRun['summary'],
    halves: run.stderr.includes('scoring copy in two halves'),
    secondOnThread: run.stderr.includes('the second on a worker thread'),
    stitched: run.stderr.includes("predictions stitched to the input's columns"),
    stderr: run.stderr,
  };
}

/** Runs `work` with this process's stderr captured: its result and what it wrote there (CALIPER_BATCH_PROFILE's lines). */
export async function withStderr<T>(work: () => Promise<T>): Promise<{ result: T; log: string }> {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await work(), log: written.join('') };
  } finally {
    process.stderr.write = write;
  }
}
