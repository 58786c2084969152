import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, packAndInstall } from '../../scripts/packed-install.mjs';
import { freePort } from '../support/redis-server.ts';

/**
 * The package as a user gets it: `npm pack` (which builds dist/), then `npm install <tarball>` into an empty project
 * in a temporary folder, offline from npm's cache, and everything run from there with plain `node` (no tsx, no
 * TypeScript sources): the `caliper` command serving models (a worker-thread instance and a TypeScript hook among
 * them), the REST and gRPC clients imported as ES modules and required from CommonJS, and the library's quantize.
 *
 * Packed and installed by scripts/packed-install.mjs, as `npm run bench:startup -- --installed` does (same flags):
 * install scripts are skipped (--ignore-scripts): the CPU build of ONNX Runtime and DuckDB's binding ship as
 * packages, and the one native build (better-sqlite3, for the registry) is not exercised here.
 */
const repo = process.cwd();
const work = mkdtempSync(join(tmpdir(), 'caliper-package-'));
const project = join(work, 'consumer');
const models = join(work, 'models');
const installed = join(project, 'node_modules', 'caliper-serving');

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, {
    cwd,
    env: cleanEnv,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}

/** Runs a script file in the consumer project with plain node and parses the JSON it prints. */
function runScript(name: string, source: string, ...args: string[]): Record<string, unknown> {
  writeFileSync(join(project, name), source);
  return JSON.parse(run(process.execPath, [name, ...args], project)) as Record<string, unknown>;
}

let installWarnings: string[] = [];
let server: ChildProcess | undefined;
let serverLog = '';
let httpUrl = '';
let grpcAddress = '';

async function waitUntilReady(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server!.exitCode !== null) throw new Error(`npx caliper serve exited ${server!.exitCode}: ${serverLog}`);
    if (
      (await fetch(`${httpUrl}/v2/health/ready`).then(
        (r) => r.status,
        () => 0,
      )) === 200
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready within ${timeoutMs} ms: ${serverLog}`);
}

async function predict(model: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${httpUrl}/models/${model}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  expect(response.status, JSON.stringify(json)).toBe(200);
  return json;
}

beforeAll(async () => {
  installWarnings = packAndInstall(repo, work).warnings;

  // A repository of the packaged examples plus one model with a TypeScript hook, outside any package.
  cpSync(join(installed, 'examples', 'fraud-detector'), join(models, 'fraud-detector'), { recursive: true });
  cpSync(join(installed, 'examples', 'fashion-mnist'), join(models, 'fashion-mnist'), { recursive: true });
  const hooked = join(models, 'hooked');
  mkdirSync(join(hooked, '1'), { recursive: true });
  cpSync(join(installed, 'examples', 'fraud-detector', '1', 'model.onnx'), join(hooked, '1', 'model.onnx'));
  const fraudYaml = readFileSync(join(installed, 'examples', 'fraud-detector', 'model.yaml'), 'utf8');
  writeFileSync(
    join(hooked, 'model.yaml'),
    `${fraudYaml.replace(/^name: .*$/m, 'name: hooked').replace(/^cache:.*$/m, '')}hooks: ./hooks.ts\n`,
  );
  writeFileSync(
    join(hooked, 'hooks.ts'),
    'export function postprocess(p: Record<string, unknown>): Record<string, unknown> { return { ...p, hook: typeof p }; }\n',
  );

  const port = await freePort();
  const grpcPort = await freePort();
  httpUrl = `http://127.0.0.1:${port}`;
  grpcAddress = `127.0.0.1:${grpcPort}`;
  // Its own process group, so that the server npx starts stops with it.
  server = spawn('npx', ['caliper', 'serve', models, '--port', String(port), '--grpc-port', String(grpcPort)], {
    cwd: project,
    env: { ...cleanEnv, CALIPER_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  server.stdout!.on('data', (chunk: Buffer) => {
    serverLog += chunk.toString();
  });
  server.stderr!.on('data', (chunk: Buffer) => {
    serverLog += chunk.toString();
  });
  await waitUntilReady(120_000);
}, 900_000);

afterAll(async () => {
  if (server?.pid !== undefined && server.exitCode === null) {
    const exited = once(server, 'exit');
    process.kill(-server.pid, 'SIGTERM');
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
});

describe('the packed package installed into an empty project', () => {
  it('holds compiled JavaScript with declarations and no TypeScript sources', () => {
    const files = readdirSync(installed, { recursive: true }).map(String);
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/index.js',
        'dist/index.d.ts',
        'dist/client/index.js',
        'dist/client/index.d.ts',
        'dist/cli/main.js',
        'dist/index.js.map',
      ]),
    );
    expect(files.filter((file) => /\.[cm]?ts$/.test(file) && !file.endsWith('.d.ts'))).toEqual([]);
    for (const file of files.filter((f) => f.endsWith('.js') && f.startsWith('dist/'))) {
      expect(readFileSync(join(installed, file), 'utf8'), file).not.toMatch(
        /from '\.{1,2}\/[^']*\.ts'|import\('\.{1,2}\/[^']*\.ts'\)/,
      );
    }
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    // bin/caliper.js runs dist/ wherever the TypeScript sources are absent, as in the package (checked below: no .ts shipped).
    expect(manifest.bin).toEqual({ caliper: 'bin/caliper.js' });
    expect(statSync(join(project, 'node_modules', '.bin', 'caliper')).isFile()).toBe(true);
  });

  it('installs and runs without an npm warning (no EBADENGINE, no unknown config key)', () => {
    expect(installWarnings).toEqual([]);
    expect(serverLog.split('\n').filter((line) => /npm warn/i.test(line))).toEqual([]);
  });

  it('npx caliper serve answers predictions: in-thread, on a worker thread, and through a TypeScript hook', async () => {
    const transaction = { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 };
    const fraud = await predict('fraud_detector', transaction);
    expect(fraud.fraud_probability).toEqual(expect.any(Number));
    const sample = JSON.parse(readFileSync(join(models, 'fashion-mnist', 'sample-request.json'), 'utf8')) as unknown;
    const fashion = await predict('fashion_mnist', sample);
    expect((fashion.top3 as { label: string }[])[0]!.label).toBe('Ankle boot');
    expect((await predict('hooked', transaction)).hook).toBe('object');
  });

  it("the client, imported as an ES module from 'caliper-serving/client', calls infer over REST and gRPC", () => {
    const result = runScript(
      'client.mjs',
      `
import { GrpcInferenceClient, RestInferenceClient } from 'caliper-serving/client';
const [url, address] = process.argv.slice(2);
// The served version (2) takes 12 features: the transaction's 10 and the card holder's two.
const inputs = [{ name: 'features', datatype: 'FP32', shape: [1, 12], data: new Float32Array([5.5, 0.57, 0, 1, 0, 0, 0, 0, 0, 0, 3, 120]) }];
const rest = new RestInferenceClient({ url });
const grpc = new GrpcInferenceClient({ address });
const viaRest = await rest.infer('fraud_detector', inputs);
const viaGrpc = await grpc.infer('fraud_detector', inputs);
rest.close();
grpc.close();
console.log(JSON.stringify({ rest: Array.from(viaRest.outputs.fraud_probability.data), grpc: Array.from(viaGrpc.outputs.fraud_probability.data) }));
`,
      httpUrl,
      grpcAddress,
    );
    expect(result.rest).toEqual([expect.any(Number)]);
    expect(result.grpc).toEqual(result.rest);
  });

  it("CommonJS can require('caliper-serving/client') and require('caliper-serving')", () => {
    const result = runScript(
      'require.cjs',
      `
const client = require('caliper-serving/client');
const library = require('caliper-serving');
console.log(JSON.stringify({ rest: typeof client.RestInferenceClient, grpc: typeof client.GrpcInferenceClient, quantize: typeof library.quantize }));
`,
    );
    expect(result).toEqual({ rest: 'function', grpc: 'function', quantize: 'function' });
  });

  it('caliper batch scores a CSV with @duckdb/node-api and yaml read from the one-file bundles of dist/vendor', () => {
    // Version 1 of the fraud model alone (the example's version 2 looks up user features).
    const model = join(work, 'batch-model');
    mkdirSync(join(model, '1'), { recursive: true });
    cpSync(join(installed, 'examples', 'fraud-detector', 'model.yaml'), join(model, 'model.yaml'));
    cpSync(join(installed, 'examples', 'fraud-detector', '1', 'model.onnx'), join(model, '1', 'model.onnx'));
    const input = join(work, 'transactions.csv');
    writeFileSync(
      input,
      'transaction_amount,merchant_category,time_since_last_txn\n249.99,electronics,310\n12.5,grocery,86400\n',
    );
    // Every CommonJS file the command loads (Node's module cache at exit), recorded by a preloaded script.
    const loadedList = join(work, 'loaded-modules.json');
    writeFileSync(
      join(project, 'record-loaded.cjs'),
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loadedList)}, JSON.stringify(Object.keys(require.cache))));\n`,
    );
    const output = join(work, 'scored.csv');
    const summary = JSON.parse(
      run(
        process.execPath,
        [
          '--require',
          './record-loaded.cjs',
          join(installed, 'bin', 'caliper.js'),
          'batch',
          '--model',
          model,
          '--input',
          input,
          '--output',
          output,
          '--json',
        ],
        project,
      ),
    ) as { rows: number; path: string };
    expect(summary).toMatchObject({ rows: 2, path: 'one-pass' });
    const lines = readFileSync(output, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('transaction_amount,merchant_category,time_since_last_txn,fraud_probability,is_fraud');
    expect(lines).toHaveLength(3);
    const loaded = JSON.parse(readFileSync(loadedList, 'utf8')) as string[];
    expect(loaded).toEqual(
      expect.arrayContaining([
        join(installed, 'dist', 'vendor', 'duckdb-node-api.cjs'),
        join(installed, 'dist', 'vendor', 'yaml.cjs'),
      ]),
    );
    // The packages' own files (~160 of them) are not read; DuckDB's native binding still is, from its package.
    expect(loaded.filter((file) => /[/\\]node_modules[/\\](@duckdb[/\\]node-api|yaml)[/\\]/.test(file))).toEqual([]);
    expect(loaded.some((file) => /[/\\]node_modules[/\\]@duckdb[/\\]node-bindings[/\\]/.test(file))).toBe(true);
  });

  it("import { quantize } from 'caliper-serving' quantizes a model", () => {
    const model = join(models, 'fashion-mnist', '1', 'model.onnx');
    const result = runScript(
      'quantize.mjs',
      `
import { quantize } from 'caliper-serving';
const { bytes } = await quantize(process.argv[2], { mode: 'dynamic' });
console.log(JSON.stringify({ bytes: bytes.length }));
`,
      model,
    );
    expect(result.bytes).toBeGreaterThan(0);
    expect(result.bytes as number).toBeLessThan(statSync(model).size / 2);
  });
});
