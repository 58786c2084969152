import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFraudData } from '../../scripts/generate-fraud-data.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';
import { fraudModelDir, query, tempRoot } from './batch-fixtures.ts';

/**
 * `--output out.csv.gz` (or .jsonl.gz, .csv.zst, .jsonl.zst) writes a compressed file on every path: the one-pass COPY
 * (also where a CSV input would be scored in halves), the parts path (--chunk-rows) and --queue. Each output is read
 * back (gzip by Node's zlib and the zstd command, rows by DuckDB) and compared with the uncompressed output.
 */
const ROWS = 20_000;
const CLI = join(import.meta.dirname, '../../bin/caliper.js');
const root = tempRoot('batch-compressed');
const MAGIC = { gz: '1f8b', zst: '28b52ffd' } as const;
let model: string;
let csvInput: string;
let parquetInput: string;
let redis: PrivateRedis & { dispose(): Promise<void> };
let worker: ChildProcess | undefined;

beforeAll(async () => {
  model = fraudModelDir(root.dir);
  csvInput = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.csv'), seed: 31 });
  parquetInput = await generateFraudData({ rows: ROWS, out: join(root.dir, 'in.parquet'), seed: 31 });
  redis = await startPrivateRedis();
});

afterAll(async () => {
  worker?.kill('SIGKILL');
  await redis?.dispose();
  root.remove();
});

function batch(
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, 'batch', '--model', model, '--json', '--overwrite', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function scored(args: string[], env: Record<string, string> = {}): { path: string } {
  const run = batch(args, env);
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as { path: string };
}

/** The file's text, decompressed by a tool other than DuckDB (Node's zlib, the zstd command). */
function decompressed(path: string): string {
  if (path.endsWith('.gz')) return gunzipSync(readFileSync(path)).toString('utf8');
  const run = spawnSync('zstd', ['-d', '-c', '-q', path], { encoding: 'utf8', maxBuffer: 1 << 30 });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout;
}

const reader = (path: string, format: 'csv' | 'jsonl'): string =>
  format === 'csv' ? `read_csv('${path}')` : `read_json('${path}', format = 'newline_delimited')`;

/** A compressed output: its magic bytes, its text decompressed, and its rows as DuckDB reads them, equal to `plain`'s. */
async function expectCompressedLike(output: string, plain: string, format: 'csv' | 'jsonl'): Promise<void> {
  const kind = output.endsWith('.gz') ? 'gz' : 'zst';
  expect(readFileSync(output).subarray(0, 4).toString('hex').startsWith(MAGIC[kind]), `${output} magic`).toBe(true);
  expect(decompressed(output).trim().split('\n').length).toBe(ROWS + (format === 'csv' ? 1 : 0));
  const [diff] = await query(
    `SELECT (SELECT count(*) FROM ${reader(output, format)})::INTEGER AS n,
            (SELECT count(*) FROM (SELECT * FROM ${reader(output, format)} EXCEPT ALL SELECT * FROM ${reader(plain, format)}))::INTEGER AS extra,
            (SELECT count(*) FROM (SELECT * FROM ${reader(plain, format)} EXCEPT ALL SELECT * FROM ${reader(output, format)}))::INTEGER AS missing`,
  );
  expect(diff).toEqual({ n: ROWS, extra: 0, missing: 0 });
}

describe('caliper batch --output NAME.gz / NAME.zst', () => {
  for (const format of ['csv', 'jsonl'] as const) {
    for (const kind of ['gz', 'zst'] as const) {
      it(`.${format}.${kind}: compressed on the one-pass and parts paths, the same rows as .${format}`, async () => {
        const plain = join(root.dir, `plain-${kind}.${format}`);
        expect(scored(['--input', parquetInput, '--output', plain]).path).toBe('one-pass');
        const onePass = join(root.dir, `one-pass.${format}.${kind}`);
        expect(scored(['--input', parquetInput, '--output', onePass]).path).toBe('one-pass');
        await expectCompressedLike(onePass, plain, format);
        const parts = join(root.dir, `parts.${format}.${kind}`);
        expect(scored(['--input', parquetInput, '--output', parts, '--chunk-rows', '5000']).path).toBe('parts');
        await expectCompressedLike(parts, plain, format);
        const rowPath = join(root.dir, `row-path.${format}.${kind}`);
        scored(['--input', parquetInput, '--output', rowPath, '--chunk-rows', '5000', '--row-path']);
        await expectCompressedLike(rowPath, plain, format);
      }, 120_000);
    }
  }

  it('a CSV input that would be scored in halves: the compressed output is still one valid stream', async () => {
    const plain = join(root.dir, 'halves-plain.csv');
    scored(['--input', csvInput, '--output', plain], { CALIPER_BATCH_HALVES_BYTES: '1' });
    for (const kind of ['gz', 'zst'] as const) {
      const output = join(root.dir, `halves.csv.${kind}`);
      expect(scored(['--input', csvInput, '--output', output], { CALIPER_BATCH_HALVES_BYTES: '1' }).path).toBe(
        'one-pass',
      );
      await expectCompressedLike(output, plain, 'csv');
    }
  }, 120_000);

  it("--queue: the submitter assembles a compressed file from the workers' parts", async () => {
    worker = spawn(process.execPath, [CLI, 'worker', '--queue', redis.url, '--lock-ms', '2000', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => reject(new Error(`worker did not start: ${stderr}`)), 60_000);
      worker!.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('waiting for shards')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    worker.stdout!.resume();
    for (const [format, kind] of [
      ['csv', 'gz'],
      ['jsonl', 'zst'],
    ] as const) {
      const output = join(root.dir, `queue.${format}.${kind}`);
      scored(['--input', csvInput, '--output', output, '--queue', redis.url, '--chunk-rows', '5000']);
      const reference = join(root.dir, `queue-plain.${format}`);
      scored(['--input', csvInput, '--output', reference]);
      await expectCompressedLike(output, reference, format);
    }
  }, 180_000);

  it('refuses output names whose compression means nothing: .parquet.gz, a bare .gz, --partition-by into .csv.gz', () => {
    const refused = (args: string[], message: RegExp): void => {
      const run = batch(['--input', parquetInput, ...args]);
      expect(run.status, run.stderr).not.toBe(0);
      expect(run.stderr).toMatch(message);
    };
    refused(['--output', join(root.dir, 'x.parquet.gz')], /--output .*x\.parquet\.gz: .*--compression/);
    refused(['--output', join(root.dir, 'x.parquet.zst'), '--format', 'parquet'], /--output .*x\.parquet\.zst: /);
    refused(['--output', join(root.dir, 'x.gz'), '--format', 'csv'], /--output .*x\.gz: .*\.csv\.gz/);
    refused(
      ['--output', join(root.dir, 'x.csv.gz'), '--partition-by', 'merchant_category'],
      /--partition-by: .*x\.csv\.gz/,
    );
    expect(readdirSync(root.dir).filter((f) => f.startsWith('x.'))).toEqual([]);
  });
});
