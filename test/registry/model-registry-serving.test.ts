import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { ModelRegistry, thisServer } from '../../src/registry/model-registry.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from './registry-fixture.ts';

/**
 * What a server following the registry reads from it, in process (the follower and serving tests reach the same
 * through whole servers): the versions to fall back on when the one a stage or alias names cannot load, the model.yaml
 * it serves with its bundled files, the checked artifact path, load events in the history, and the change stamp that
 * tells a follower something moved. Every test opens its own registry in its own folder.
 */

let fixture: RegistryFixture;
let registry: ModelRegistry;

beforeEach(() => {
  fixture = new RegistryFixture();
  registry = ModelRegistry.open(fixture.home);
});
afterEach(async () => {
  await registry.close();
  fixture.remove();
});

async function registerVersions(count: number, name = 'fraud'): Promise<void> {
  for (let i = 0; i < count; i++)
    await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name, actor: 'ci' });
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected a rejection');
}

const numbers = (versions: { version: number }[]): number[] => versions.map((v) => v.version);

describe('lineage: what to serve when the version a selector names cannot load', () => {
  it('for a stage: the other versions in it, highest first, then those that left it, most recent first', async () => {
    await registerVersions(5);
    for (const v of [1, 2, 3]) await registry.setStage('fraud', v, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 1, 'Staging', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Archived', { actor: 'ci' });
    await registry.setStage('fraud', 4, 'Production', { actor: 'ci' });
    // Production: 3, 4. Left it: 2 (last), then 1.
    const lineage = await registry.lineage('fraud', { kind: 'stage', stage: 'Production' }, 4);
    expect(numbers(lineage)).toEqual([3, 2, 1]);
    expect(lineage[0]).toMatchObject({ name: 'fraud', version: 3, stage: 'Production' });
    // Another stage's moves are not Production's lineage.
    expect(numbers(await registry.lineage('fraud', { kind: 'stage', stage: 'Staging' }, 99))).toEqual([1]);
  });

  it('lists a version once even when it left the stage and came back, and leaves out the excluded one', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 1, 'Archived', { actor: 'ci' });
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 3, 'Production', { actor: 'ci' });
    expect(numbers(await registry.lineage('fraud', { kind: 'stage', stage: 'Production' }, 3))).toEqual([2, 1]);
    expect(numbers(await registry.lineage('fraud', { kind: 'stage', stage: 'Production' }, 1))).toEqual([3, 2]);
  });

  it('for a stage no version is in now: the versions that left it', async () => {
    await registerVersions(2);
    await registry.setStage('fraud', 1, 'Staging', { actor: 'ci' });
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    expect(numbers(await registry.lineage('fraud', { kind: 'stage', stage: 'Staging' }, 2))).toEqual([1]);
  });

  it('leaves out deleted versions', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 1, 'Archived', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Archived', { actor: 'ci' });
    await registry.setStage('fraud', 3, 'Production', { actor: 'ci' });
    await registry.deleteVersion('fraud', 1, { actor: 'ci' });
    expect(numbers(await registry.lineage('fraud', { kind: 'stage', stage: 'Production' }, 3))).toEqual([2]);
  });

  it('for an alias: the versions it pointed at before, most recent first, not those of an alias it prefixes', async () => {
    await registerVersions(4);
    await registry.setAlias('fraud', 'champion', 1, 'ci');
    await registry.setAlias('fraud', 'champion', 2, 'ci');
    await registry.setAlias('fraud', 'champ', 4, 'ci');
    await registry.setAlias('fraud', 'champion', 3, 'ci');
    expect(numbers(await registry.lineage('fraud', { kind: 'alias', alias: 'champion' }, 3))).toEqual([2, 1]);
    expect(numbers(await registry.lineage('fraud', { kind: 'alias', alias: 'champ' }, 99))).toEqual([4]);
  });

  it('for a removed alias: the version it pointed at last, then the ones before', async () => {
    await registerVersions(3);
    await registry.setAlias('fraud', 'champion', 1, 'ci');
    await registry.setAlias('fraud', 'champion', 3, 'ci');
    await registry.removeAlias('fraud', 'champion', 'ci');
    expect(numbers(await registry.lineage('fraud', { kind: 'alias', alias: 'champion' }, 99))).toEqual([3, 1]);
  });

  it('has none for an explicit version or latest', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    // Not even from an alias whose name is the word "undefined".
    await registry.setAlias('fraud', 'undefined', 1, 'ci');
    await registry.setAlias('fraud', 'undefined', 2, 'ci');
    expect(await registry.lineage('fraud', { kind: 'version', version: 3 }, 3)).toEqual([]);
    expect(await registry.lineage('fraud', { kind: 'latest' }, 3)).toEqual([]);
  });
});

describe('load events', () => {
  it('records a failed load and the version served instead in the history, with the reason and who saw it', async () => {
    await registerVersions(2);
    await registry.recordLoadEvent('fraud', 2, 'load_failed', { to: 'session create failed' }, 'server:a:1');
    await registry.recordLoadEvent('fraud', 1, 'served_instead', { from: 'models:/fraud/Production' }, 'server:a:1');
    const events = (await registry.history('fraud')).filter((h) => h.event !== 'registered');
    expect(events).toEqual([
      expect.objectContaining({ version: 2, event: 'load_failed', to: 'session create failed', actor: 'server:a:1' }),
      expect.objectContaining({ version: 1, event: 'served_instead', from: 'models:/fraud/Production' }),
    ]);
    expect(events[0]!.from).toBeUndefined();
    expect(events[1]!.to).toBeUndefined();
  });
});

describe('change stamp', () => {
  it("changes when another connection's write commits, not on reads", async () => {
    await registerVersions(1);
    const follower = ModelRegistry.open(fixture.home);
    try {
      const before = await follower.changeStamp();
      expect(typeof before).toBe('string');
      await registry.model('fraud');
      expect(await follower.changeStamp()).toBe(before);
      await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
      expect(await follower.changeStamp()).not.toBe(before);
    } finally {
      await follower.close();
    }
  });
});

describe('what a server loads', () => {
  it("serves the registered name's model.yaml, whatever name the file gives, and the checked artifact", async () => {
    await registerVersions(1, 'renamed');
    const version = await registry.version('renamed', 1);
    const config = registry.configOf(version);
    expect(config.name).toBe('renamed');
    // Errors about the stored model.yaml name the version it belongs to.
    expect(config.file).toBe('models:/renamed/1 (model.yaml)');
    // Without bundled files, the served config is the stored one, its paths resolving beside the artifact.
    expect((await registry.servedConfigOf(version)).dir).toBe(config.dir);
    expect(config.inputs.map((i) => i.name)).toContain('transaction_amount');
    expect((await registry.servedConfigOf(version)).name).toBe('renamed');
    const path = await registry.artifactPath(version);
    expect(readFileSync(path)).toEqual(readFileSync(FRAUD_ONNX));
  });

  it('refuses an artifact whose bytes changed, naming the version', async () => {
    await registerVersions(1);
    const version = await registry.version('fraud', 1);
    writeFileSync(await registry.artifactPath(version), 'garbage');
    expect(await failure(registry.artifactPath(version))).toMatch(/^CALIPER_ARTIFACT_CORRUPT: models:\/fraud\/1: /);
  });

  /** A model folder of its own: the fraud model, its model.yaml naming `hooks/shape.mjs`, and that hook module. */
  function folderWithHook(hook: string | undefined): string {
    const dir = join(fixture.dir, 'source');
    mkdirSync(join(dir, 'hooks'), { recursive: true });
    copyFileSync(FRAUD_ONNX, join(dir, 'model.onnx'));
    writeFileSync(join(dir, 'model.yaml'), `${readFileSync(FRAUD_YAML, 'utf8')}\nhooks: ./hooks/shape.mjs\n`);
    if (hook !== undefined) writeFileSync(join(dir, 'hooks', 'shape.mjs'), hook);
    return dir;
  }

  it('stores a hook module model.yaml names with the version, and serves it after the source folder is gone', async () => {
    const hook = 'export function postprocess(p) { return { ...p, bundled: true }; }\n';
    const dir = folderWithHook(hook);
    const record = await registry.register({
      file: join(dir, 'model.onnx'),
      configFile: join(dir, 'model.yaml'),
      name: 'hooked',
      tags: { team: 'risk' },
      actor: 'ci',
    });
    expect(record.tags.team).toBe('risk');
    expect(Object.keys(JSON.parse(record.tags['caliper.files']!) as object)).toEqual(['hooks/shape.mjs']);
    rmSync(dir, { recursive: true, force: true });
    const served = await registry.servedConfigOf(record);
    expect(served.name).toBe('hooked');
    expect(served.hooks).toBe('./hooks/shape.mjs');
    // Laid out as beside model.yaml, subfolder included.
    const file = join(served.dir, 'hooks', 'shape.mjs');
    expect(readFileSync(file, 'utf8')).toBe(hook);
    // The bundle has its own folder beside the artifact, and a second load reads the files fetched before.
    expect(served.dir).not.toBe(registry.configOf(record).dir);
    expect((await registry.servedConfigOf(record)).dir).toBe(served.dir);
    expect(existsSync(file)).toBe(true);
    expect(served.file).toBe('models:/hooked/1 (model.yaml)');
  });

  it('refuses a bundled file whose stored bytes changed, naming the version and the file', async () => {
    const dir = folderWithHook('export function postprocess(p) { return p; }\n');
    const record = await registry.register({
      file: join(dir, 'model.onnx'),
      configFile: join(dir, 'model.yaml'),
      name: 'hooked',
      actor: 'ci',
    });
    const sha = (JSON.parse(record.tags['caliper.files']!) as Record<string, string>)['hooks/shape.mjs']!;
    writeFileSync(join(registry.artifacts.localDir(sha), sha), 'garbage');
    expect(await failure(registry.servedConfigOf(record))).toMatch(
      /^CALIPER_ARTIFACT_CORRUPT: models:\/hooked\/1 \(hooks\/shape\.mjs\): /,
    );
  });

  it('refuses a model.yaml naming a hook module that is not there, naming the file, and creates no version', async () => {
    const dir = folderWithHook(undefined);
    const message = await failure(
      registry.register({ file: join(dir, 'model.onnx'), configFile: join(dir, 'model.yaml'), name: 'hooked' }),
    );
    expect(message).toBe(
      `CALIPER_NOT_FOUND: ${join(dir, 'hooks', 'shape.mjs')}: model.yaml names this file but it cannot be read (ENOENT)`,
    );
    expect(await registry.listModels()).toEqual([]);
  });
});

describe('the registry itself', () => {
  it('names its folder, records the registering user and the bytes, and names this server by host and pid', async () => {
    expect(registry.location).toBe(resolve(fixture.home));
    expect(registry.home).toBe(resolve(fixture.home));
    const version = await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud' });
    expect(version.createdBy).toBe(`cli:${userInfo().username}`);
    expect((await registry.history('fraud'))[0]).toMatchObject({
      event: 'registered',
      version: 1,
      to: `sha256:${version.sha256}`,
      actor: `cli:${userInfo().username}`,
    });
    expect(thisServer()).toEqual({ host: hostname(), pid: process.pid });
  });

  it('releases its database on close: a later call is refused', async () => {
    const other = ModelRegistry.open(fixture.home);
    await other.close();
    await expect(other.listModels()).rejects.toThrow();
  });
});
