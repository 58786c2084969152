import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Of } from '../../src/registry/artifact-store.ts';
import { ModelRegistry, REGISTRY_DB_FILE } from '../../src/registry/model-registry.ts';
import { startServing } from '../../src/server/serving.ts';
import { GraphBuilder, tensorFromArray } from '../../src/optimize/onnx/graph-builder.ts';
import { encodeModel } from '../../src/optimize/onnx/model-io.ts';
import { TensorDataType } from '../../src/optimize/onnx/onnx-schema.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from './registry-fixture.ts';

const exec = promisify(execFile);
const fixture = new RegistryFixture();
afterAll(() => fixture.remove());

/**
 * A model with the fraud detector's signature (features float [N,10] → fraud_probability float [N,1]) that ONNX
 * Runtime loads and the signature check accepts, but whose first run fails: a Gather along axis 1 with the
 * constant index 42 on a 10-wide tensor.
 */
function unrunnableFraudModel(): string {
  const g = new GraphBuilder('unrunnable', 17);
  g.input({ name: 'features', elemType: TensorDataType.FLOAT, shape: ['batch', 10] });
  const index = g.initializer(tensorFromArray('out_of_range', [1], BigInt64Array.from([42n])));
  g.node('Gather', ['features', index], { axis: 1 }, ['fraud_probability']);
  g.output({ name: 'fraud_probability', elemType: TensorDataType.FLOAT, shape: ['batch', 1] });
  return fixture.file('unrunnable.onnx', encodeModel(g.build()));
}

const FIRST_RUN_FAILS = /first inference fails.*(Gather|indices|out of|bounds)/is;

/** A logger whose lines a test can read. */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  return { logger, lines };
}

/**
 * Puts a version that cannot run into the registry as a registry written before registration ran an inference
 * holds one: a good version is registered, then its row is pointed at the unrunnable artifact (stored by its hash).
 */
async function smuggleUnrunnableVersion(home: string, name: string): Promise<number> {
  const registry = ModelRegistry.open(home);
  const created = await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name, actor: 'test' });
  await registry.close();
  const file = unrunnableFraudModel();
  const sha = await sha256Of(file);
  const dir = join(home, 'artifacts', 'sha256', sha.slice(0, 2));
  mkdirSync(dir, { recursive: true });
  copyFileSync(file, join(dir, sha));
  const db = new Database(join(home, REGISTRY_DB_FILE));
  db.prepare('UPDATE versions SET sha256 = ?, size = ? WHERE model = ? AND version = ?').run(
    sha,
    readFileSync(file).length,
    name,
    created.version,
  );
  db.close();
  return created.version;
}

describe('a model that loads but cannot run', () => {
  it('is refused by `caliper models register` with a non-zero exit naming the failure, and no version is created', async () => {
    const home = join(fixture.dir, 'refuse');
    const file = unrunnableFraudModel();
    const registry = ModelRegistry.open(home);
    try {
      await expect(
        registry.register({ file, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' }),
      ).rejects.toMatchObject({ code: 'CALIPER_MODEL_LOAD_FAILED', message: expect.stringMatching(FIRST_RUN_FAILS) });
      expect(await registry.listModels()).toEqual([]);
    } finally {
      await registry.close();
    }
    const cli = await exec(
      'node',
      ['bin/caliper.js', 'models', 'register', file, '--name', 'fraud', '--config', FRAUD_YAML, '--registry', home],
      { env: { ...process.env, CALIPER_HOME: '' } },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(FIRST_RUN_FAILS);
    expect(cli.stderr).toMatch(/unrunnable\.onnx/);
  });

  it('is refused by POST /v2/repository/models/NAME/load even with warmup.runs: 0', async () => {
    const repo = join(fixture.dir, 'repo');
    mkdirSync(join(repo, 'fraud', '1'), { recursive: true });
    writeFileSync(
      join(repo, 'fraud', 'model.yaml'),
      `${readFileSync(FRAUD_YAML, 'utf8')}\nwarmup: { runs: 0 }\n`.replace('name: fraud_detector', 'name: fraud'),
    );
    copyFileSync(unrunnableFraudModel(), join(repo, 'fraud', '1', 'model.onnx'));
    const { logger } = capturingLogger();
    const server = await startServing({ paths: [repo], port: 0, logger, auth: { adminToken: 'admin-secret' } });
    try {
      expect(server.repository.has('fraud')).toBe(false);
      const load = await fetch(`${server.url}/v2/repository/models/fraud/load`, {
        method: 'POST',
        headers: { authorization: 'Bearer admin-secret', 'content-type': 'application/json' },
        body: '{}',
      });
      expect(load.status).toBe(500);
      expect(((await load.json()) as { error: string }).error).toMatch(FIRST_RUN_FAILS);
      expect(server.repository.has('fraud')).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('in the registry: a following server keeps the old version, records why in history and show; a restarted server serves the newest of the stage that loads, with a warning', async () => {
    const home = join(fixture.dir, 'follow');
    const writer = ModelRegistry.open(home);
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.setStage('fraud', 1, 'Production', { actor: 'test' });
    await writer.close();
    const broken = await smuggleUnrunnableVersion(home, 'fraud');
    expect(broken).toBe(2);

    const first = capturingLogger();
    const server = await startServing({
      paths: [],
      modelUris: ['models:/fraud/Production'],
      registry: home,
      registryPollMs: 25,
      port: 0,
      logger: first.logger,
    });
    const registry = ModelRegistry.open(home);
    try {
      await registry.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'test' });
      await expect
        .poll(async () => (await registry.history('fraud')).some((h) => h.event === 'load_failed'), { timeout: 10_000 })
        .toBe(true);
      expect(server.follower?.statusOf('fraud')).toMatchObject({ servedVersion: 1, failedVersion: 2 });
      const failed = (await registry.history('fraud')).find((h) => h.event === 'load_failed')!;
      expect(failed).toMatchObject({ version: 2, actor: expect.stringMatching(/^server:.+:\d+$/) });
      expect(failed.to).toMatch(FIRST_RUN_FAILS);
      await expect
        .poll(async () => (await registry.replicas('fraud'))[0], { timeout: 10_000 })
        .toMatchObject({ version: 1, failedVersion: 2, reason: expect.stringMatching(/version 2 failed to load/) });
    } finally {
      await server.close();
    }
    expect(await registry.replicas('fraud')).toEqual([]);

    // Production is now only version 2 (1 was archived): a restart serves 1, the newest of Production's lineage.
    const restarted = capturingLogger();
    const again = await startServing({
      paths: [],
      modelUris: ['models:/fraud/Production'],
      registry: home,
      registryPollMs: 25,
      port: 0,
      logger: restarted.logger,
    });
    try {
      expect(again.repository.get('fraud').defaultVersion).toBe(1);
      const answer = await fetch(`${again.url}/models/fraud/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ transaction_amount: 12, merchant_category: 'fuel', time_since_last_txn: 60 }),
      });
      expect(answer.status).toBe(200);
      const warning = restarted.lines
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .find((l) => l.level === 40 && /instead/.test(l.msg));
      expect(warning?.msg).toMatch(/models:\/fraud\/Production is version 2, which does not load; serving version 1/);
      const history = await registry.history('fraud');
      expect(history.find((h) => h.event === 'served_instead')).toMatchObject({ version: 1, from: 'models:/fraud/2' });
      expect((await registry.replicas('fraud'))[0]).toMatchObject({
        version: 1,
        failedVersion: 2,
        state: 'ready',
        reason: expect.stringMatching(/version 2 failed to load.*version 1 serves instead/s),
      });
      const show = await exec('node', ['bin/caliper.js', 'models', 'show', 'fraud', '--registry', home], {
        env: { ...process.env, CALIPER_HOME: '' },
      });
      expect(show.stdout).toMatch(/version 2 failed to load/);
      const historyText = await exec('node', ['bin/caliper.js', 'models', 'history', 'fraud', '--registry', home], {
        env: { ...process.env, CALIPER_HOME: '' },
      });
      expect(historyText.stdout).toMatch(/load_failed/);
      expect(historyText.stdout).toMatch(/served_instead/);
    } finally {
      await again.close();
      await registry.close();
    }
  });

  it('an explicit load of a registry model whose stage does not load is refused (only a restart falls back)', async () => {
    const home = join(fixture.dir, 'explicit');
    const writer = ModelRegistry.open(home);
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'other', actor: 'test' });
    await writer.setStage('other', 1, 'Production', { actor: 'test' });
    await writer.setStage('fraud', 1, 'Production', { actor: 'test' });
    await writer.close();
    const broken = await smuggleUnrunnableVersion(home, 'fraud');
    const registry = ModelRegistry.open(home);
    // Version 1 left Production: a restart would fall back to it; an explicit load must not.
    await registry.setStage('fraud', broken, 'Production', { archiveExisting: true, actor: 'test' });
    await registry.close();
    const server = await startServing({
      paths: [],
      modelUris: ['models:/other/Production'],
      registry: home,
      registryPollMs: 25,
      port: 0,
      logger: capturingLogger().logger,
      auth: { adminToken: 'admin-secret' },
    });
    try {
      const load = await fetch(`${server.url}/v2/repository/models/fraud/load`, {
        method: 'POST',
        headers: { authorization: 'Bearer admin-secret', 'content-type': 'application/json' },
        body: '{}',
      });
      expect(load.status).toBe(500);
      expect(((await load.json()) as { error: string }).error).toMatch(FIRST_RUN_FAILS);
      expect(server.repository.has('fraud')).toBe(false);
    } finally {
      await server.close();
    }
  });
});
