import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/redis-server.ts';

/**
 * Start-up time: a command loads the heavy dependencies only when it uses them (BENCHMARKS.md, Start-up). Each case
 * runs the real CLI in its own process with a preload that prints, as the process exits, the npm packages its main
 * thread loaded (CommonJS modules, as these dependencies are, land in require.cache when imported).
 */
const exec = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/caliper.js');
const examples = join(import.meta.dirname, '../../examples');
const work = mkdtempSync(join(tmpdir(), 'caliper-lazy-'));
const preload = join(work, 'loaded-packages.mjs');
writeFileSync(
  preload,
  `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
process.on('exit', () => {
  const packages = new Set();
  for (const file of Object.keys(require.cache)) {
    const match = /node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(file);
    if (match) packages.add(match[1].replace('\\\\', '/'));
  }
  process.stderr.write('LOADED ' + JSON.stringify([...packages]) + '\\n');
});
`,
);
// Records the CommonJS packages the ES module loader translated (each costs a scan of its files for export names).
const esmHooks = join(work, 'esm-hooks.mjs');
writeFileSync(
  esmHooks,
  `export async function load(url, context, next) {
  const result = await next(url, context);
  const match = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(url);
  if (result.format === 'commonjs' && match) process.stderr.write('ESM-TRANSLATED ' + match[1] + '\\n');
  return result;
}
`,
);
const esmPreload = join(work, 'esm-translated.mjs');
writeFileSync(
  esmPreload,
  `import { register } from 'node:module';
register(${JSON.stringify(`file://${esmHooks}`)});
`,
);
afterAll(() => rmSync(work, { recursive: true, force: true }));

function loadedPackages(stderr: string): string[] {
  const line = stderr.split('\n').find((l) => l.startsWith('LOADED '));
  if (!line) throw new Error(`no LOADED line in: ${stderr}`);
  return JSON.parse(line.slice('LOADED '.length)) as string[];
}

/** Loaded by no command that does not need them: storage, queues, training, other protocols. */
const HEAVY = [
  'ioredis',
  'better-sqlite3',
  'pg',
  '@aws-sdk/client-s3',
  '@duckdb/node-api',
  '@grpc/grpc-js',
  'bullmq',
  '@tensorflow/tfjs',
  '@tensorflow/tfjs-core',
];

/** Loaded on the first request to /docs, not by `serve` starting. */
const DOCS_UI = ['@fastify/swagger', '@fastify/swagger-ui', '@fastify/static'];

describe('commands load heavy dependencies only when they use them', () => {
  it('caliper --help loads no model runtime, server, storage or training library', async () => {
    const { stdout, stderr } = await exec('node', ['--import', preload, bin, '--help'], { cwd: work });
    expect(stdout).toContain('serve [options] [paths...]');
    const loaded = loadedPackages(stderr);
    expect(loaded).toEqual(expect.not.arrayContaining(['onnxruntime-node']));
    expect(loaded).toEqual(expect.not.arrayContaining(['fastify']));
    for (const name of HEAVY) expect(loaded, name).not.toContain(name);
  });

  it('caliper doctor --help loads no model runtime, storage, Redis or training library', async () => {
    const { stdout, stderr } = await exec('node', ['--import', preload, bin, 'doctor', '--help'], { cwd: work });
    expect(stdout).toContain('--p99-ms <ms>');
    const loaded = loadedPackages(stderr);
    expect(loaded).toEqual(expect.not.arrayContaining(['onnxruntime-node']));
    for (const name of HEAVY) expect(loaded, name).not.toContain(name);
  });

  it('caliper serve DIR without a registry, gRPC, Redis or feature file loads none of their clients', async () => {
    const loaded = await packagesLoadedServing(join(examples, 'iris-classifier'));
    expect(loaded).toEqual(expect.arrayContaining(['fastify', 'onnxruntime-node']));
    for (const name of [...HEAVY, ...DOCS_UI]) expect(loaded, name).not.toContain(name);
  }, 90_000);

  it('caliper serve loads protobufjs only for a model whose session metadata leaves its batch axis open, DuckDB only for Parquet', async () => {
    // fashion-mnist and fraud-detector name their batch dimension in inputs and outputs: ONNX Runtime's metadata
    // decides, no ONNX file is decoded (iris, with unnamed dims and a ZipMap output, needs its graph read, and so
    // protobufjs). fraud-detector's user features are a CSV file, read without DuckDB.
    const loaded = await packagesLoadedServing(join(examples, 'fashion-mnist'), join(examples, 'fraud-detector'));
    expect(loaded).toEqual(expect.arrayContaining(['fastify', 'onnxruntime-node']));
    expect(loaded).not.toContain('protobufjs');
    for (const name of HEAVY) expect(loaded, name).not.toContain(name);
  }, 90_000);

  it('caliper batch on one machine loads no queue client (BullMQ, Redis), registry store, server or training library', async () => {
    const model = join(work, 'fraud_detector');
    mkdirSync(join(model, '1'), { recursive: true });
    copyFileSync(join(examples, 'fraud-detector', 'model.yaml'), join(model, 'model.yaml'));
    copyFileSync(join(examples, 'fraud-detector', '1', 'model.onnx'), join(model, '1', 'model.onnx'));
    const input = join(work, 'transactions.csv');
    writeFileSync(input, 'transaction_amount,merchant_category,time_since_last_txn\n12.5,grocery,300\n80,travel,20\n');
    const output = join(work, 'scored.csv');
    const { stdout, stderr } = await exec(
      'node',
      ['--import', preload, bin, 'batch', '--model', model, '--input', input, '--output', output, '--json'],
      { cwd: work },
    );
    expect(JSON.parse(stdout)).toMatchObject({ rows: 2, outputRows: 2 });
    const loaded = loadedPackages(stderr);
    expect(loaded).toEqual(expect.arrayContaining(['onnxruntime-node', '@duckdb/node-api']));
    expect(loaded).not.toContain('fastify');
    for (const name of HEAVY.filter((n) => n !== '@duckdb/node-api')) expect(loaded, name).not.toContain(name);
  }, 90_000);

  it('caliper batch requires DuckDB and ONNX Runtime (CommonJS) instead of importing them through the ES loader', async () => {
    // An ES import of a CommonJS package makes Node scan it and every file it re-exports for export names
    // (about 0.3 s of CPU for both at each start); `require` skips that scan.
    const model = join(work, 'fraud_detector_esm');
    mkdirSync(join(model, '1'), { recursive: true });
    copyFileSync(join(examples, 'fraud-detector', 'model.yaml'), join(model, 'model.yaml'));
    copyFileSync(join(examples, 'fraud-detector', '1', 'model.onnx'), join(model, '1', 'model.onnx'));
    const input = join(work, 'transactions-esm.csv');
    writeFileSync(input, 'transaction_amount,merchant_category,time_since_last_txn\n12.5,grocery,300\n');
    const { stdout, stderr } = await exec(
      'node',
      [
        '--import',
        esmPreload,
        bin,
        'batch',
        '--model',
        model,
        '--input',
        input,
        '--output',
        join(work, 'esm.csv'),
        '--json',
      ],
      { cwd: work },
    );
    expect(JSON.parse(stdout)).toMatchObject({ rows: 1, outputRows: 1 });
    const translated = stderr
      .split('\n')
      .filter((l) => l.startsWith('ESM-TRANSLATED '))
      .map((l) => l.slice('ESM-TRANSLATED '.length));
    expect(translated).not.toContain('@duckdb/node-api');
    expect(translated).not.toContain('onnxruntime-node');
  }, 90_000);
});

/** The npm packages the main thread of `caliper serve PATH...` has loaded once it is ready (or has exited). */
async function packagesLoadedServing(...paths: string[]): Promise<string[]> {
  const port = await freePort();
  let stderr = '';
  const server: ChildProcess = spawn('node', ['--import', preload, bin, 'serve', ...paths, '--port', String(port)], {
    cwd: work,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
  });
  server.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = once(server, 'exit');
  const deadline = Date.now() + 60_000;
  let ready = false;
  while (!ready && Date.now() < deadline && server.exitCode === null) {
    ready =
      (await fetch(`http://127.0.0.1:${port}/v2/health/ready`).then(
        (r) => r.status,
        () => 0,
      )) === 200;
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  server.kill('SIGTERM');
  await exited;
  if (!ready) throw new Error(`caliper serve ${paths.join(' ')} did not become ready: ${stderr}`);
  return loadedPackages(stderr);
}
