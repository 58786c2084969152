import { chmodSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { ArtifactStore } from '../../src/registry/artifact-store.ts';
import { describeTraffic, ModelRegistry, type HistoryEntry } from '../../src/registry/model-registry.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from './registry-fixture.ts';

/**
 * The registry as `caliper models …` users rely on it, beyond model-registry.test.ts: stage moves with and without
 * archiving, no-op moves, models with no versions left, aliases removed, unreadable inputs, delete guards. Every test
 * opens its own registry in its own folder: no test sees what another did.
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

/** Registers `count` versions of the fraud model under `name`. */
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

const stageMoves = (history: HistoryEntry[]) =>
  history.filter((h) => h.event === 'stage').map((h) => [h.version, h.from, h.to]);

describe('stages', () => {
  it('without archiveExisting, moving a version into a stage leaves the versions already there', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Production', { actor: 'ci' });
    expect((await registry.version('fraud', 1)).stage).toBe('Production');
    expect((await registry.model('fraud')).stages).toEqual({ Production: [1, 2] });
    // The highest version in the stage answers models:/fraud/Production.
    expect((await registry.resolve('fraud', { kind: 'stage', stage: 'Production' })).version).toBe(2);
    expect(stageMoves(await registry.history('fraud'))).toEqual([
      [1, 'None', 'Production'],
      [2, 'None', 'Production'],
    ]);
  });

  it('with archiveExisting, every other version in the stage is archived, and recorded as such', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Staging', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Staging', { actor: 'ci' });
    await registry.setStage('fraud', 3, 'Staging', { archiveExisting: true, actor: 'ops' });
    expect((await registry.model('fraud')).stages).toEqual({ Staging: [3], Archived: [1, 2] });
    const history = await registry.history('fraud');
    expect(stageMoves(history).slice(2)).toEqual([
      [1, 'Staging', 'Archived'],
      [2, 'Staging', 'Archived'],
      [3, 'None', 'Staging'],
    ]);
    expect(history.filter((h) => h.event === 'stage').at(-1)!.actor).toBe('ops');
  });

  it('archiveExisting has no effect when the target stage is None or Archived', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 3, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 3, 'None', { archiveExisting: true, actor: 'ci' });
    expect((await registry.model('fraud')).stages).toEqual({});
    await registry.archive('fraud', 1, 'ci');
    await registry.setStage('fraud', 2, 'Archived', { archiveExisting: true, actor: 'ci' });
    expect((await registry.model('fraud')).stages).toEqual({ Archived: [1, 2] });
    expect(stageMoves(await registry.history('fraud'))).toEqual([
      [3, 'None', 'Production'],
      [3, 'Production', 'None'],
      [1, 'None', 'Archived'],
      [2, 'None', 'Archived'],
    ]);
  });

  it('setting a version to the stage it is in changes nothing and adds no history', async () => {
    await registerVersions(1);
    const moved = await registry.setStage('fraud', 1, 'Staging', { actor: 'ci' });
    const before = await registry.history('fraud');
    const again = await registry.setStage('fraud', 1, 'Staging', { actor: 'ci' });
    expect(again.stage).toBe('Staging');
    expect(again.stageUpdatedAt).toBe(moved.stageUpdatedAt);
    expect(await registry.history('fraud')).toEqual(before);
    // A version in None set to None: nothing either.
    await registerVersions(1);
    await registry.setStage('fraud', 2, 'None', { actor: 'ci' });
    expect((await registry.history('fraud')).length).toBe(before.length + 1);
  });

  it('never lists None among the stages, and says so when asked for a stage no version is in', async () => {
    await registerVersions(2);
    expect((await registry.model('fraud')).stages).toEqual({});
    expect(await failure(registry.resolve('fraud', { kind: 'stage', stage: 'Production' }))).toBe(
      'CALIPER_VERSION_NOT_FOUND: models:/fraud/Production: model "fraud" has no version in stage Production (every version is in stage None)',
    );
    await registry.setStage('fraud', 2, 'Staging', { actor: 'ci' });
    await registry.archive('fraud', 1, 'ci');
    const model = await registry.model('fraud');
    expect(Object.keys(model.stages).sort()).toEqual(['Archived', 'Staging']);
    expect(await failure(registry.resolve('fraud', { kind: 'stage', stage: 'Production' }))).toBe(
      'CALIPER_VERSION_NOT_FOUND: models:/fraud/Production: model "fraud" has no version in stage Production (Archived: 1; Staging: 2)',
    );
  });

  it('names the version that does not exist when asked to move it', async () => {
    await registerVersions(2);
    expect(await failure(registry.setStage('fraud', 5, 'Production', { actor: 'ci' }))).toBe(
      'CALIPER_VERSION_NOT_FOUND: model "fraud" has no version 5 (versions: 1, 2)',
    );
  });
});

describe('a model with no versions left', () => {
  it('keeps its name, lists no versions, and says so for latest, stages and version numbers', async () => {
    await registerVersions(2);
    await registry.deleteVersion('fraud', 1, { actor: 'ci' });
    await registry.deleteVersion('fraud', 2, { actor: 'ci' });
    const model = await registry.model('fraud');
    expect(model.versions).toEqual([]);
    expect(model.latestVersion).toBeUndefined();
    expect(model.stages).toEqual({});
    expect(await registry.versions('fraud')).toEqual([]);
    expect(await failure(registry.resolve('fraud', { kind: 'latest' }))).toBe(
      'CALIPER_VERSION_NOT_FOUND: models:/fraud/latest: model "fraud" has no versions',
    );
    expect(await failure(registry.version('fraud', 1))).toBe(
      'CALIPER_VERSION_NOT_FOUND: model "fraud" has no version 1 (versions: none)',
    );
    // The next registration continues the numbering: a version number is never reused.
    await registerVersions(1);
    expect((await registry.model('fraud')).versions).toEqual([3]);
    expect((await registry.resolve('fraud', { kind: 'latest' })).version).toBe(3);
  });

  it('answers latest with the highest version, not the first', async () => {
    await registerVersions(3);
    expect((await registry.model('fraud')).latestVersion).toBe(3);
    await registry.deleteVersion('fraud', 3, { actor: 'ci' });
    expect((await registry.resolve('fraud', { kind: 'latest' })).version).toBe(2);
  });
});

describe('aliases', () => {
  it('removeAlias drops the alias from the model and the version, and records where it pointed', async () => {
    await registerVersions(2);
    await registry.setAlias('fraud', 'champion', 2, 'ci');
    await registry.setAlias('fraud', 'backup', 2, 'ci');
    await registry.removeAlias('fraud', 'champion', 'ops');
    expect((await registry.model('fraud')).aliases).toEqual({ backup: 2 });
    expect((await registry.version('fraud', 2)).aliases).toEqual(['backup']);
    expect(await failure(registry.resolve('fraud', { kind: 'alias', alias: 'champion' }))).toBe(
      'CALIPER_NOT_FOUND: models:/fraud@champion: model "fraud" has no alias "champion" (aliases: backup)',
    );
    const removed = (await registry.history('fraud')).filter((h) => h.event === 'alias_removed');
    expect(removed).toEqual([expect.objectContaining({ version: 2, from: 'champion=2', actor: 'ops' })]);
    expect(removed[0]!.to).toBeUndefined();
  });

  it('removeAlias of an alias that does not exist fails and records nothing', async () => {
    await registerVersions(1);
    const before = await registry.history('fraud');
    expect(await failure(registry.removeAlias('fraud', 'ghost', 'ci'))).toBe(
      'CALIPER_NOT_FOUND: model "fraud" has no alias "ghost"',
    );
    expect(await registry.history('fraud')).toEqual(before);
    expect(await failure(registry.resolve('fraud', { kind: 'alias', alias: 'ghost' }))).toContain('(aliases: none)');
  });

  it('pointing an alias at the version it already names adds no history; moving it records both ends', async () => {
    await registerVersions(2);
    await registry.setAlias('fraud', 'champion', 1, 'ci');
    await registry.setAlias('fraud', 'champion', 1, 'ci');
    await registry.setAlias('fraud', 'champion', 2, 'ci');
    const moves = (await registry.history('fraud'))
      .filter((h) => h.event === 'alias_set')
      .map((h) => [h.version, h.from, h.to]);
    expect(moves).toEqual([
      [1, undefined, 'champion=1'],
      [2, 'champion=1', 'champion=2'],
    ]);
    expect((await registry.version('fraud', 1)).aliases).toEqual([]);
  });
});

describe('registration', () => {
  it('refuses a model.yaml it cannot read, naming the file and the reason, and creates nothing', async () => {
    const missing = `${fixture.dir}/no-such/model.yaml`;
    expect(
      await failure(registry.register({ file: FRAUD_ONNX, configFile: missing, name: 'fraud', actor: 'ci' })),
    ).toBe(`CALIPER_NOT_FOUND: ${missing}: cannot read model.yaml (ENOENT)`);
    expect(await registry.listModels()).toEqual([]);
  });

  it('refuses a model file it cannot read, naming the file and the reason, and creates nothing', async () => {
    const missing = `${fixture.dir}/gone.onnx`;
    expect(
      await failure(registry.register({ file: missing, configFile: FRAUD_YAML, name: 'fraud', actor: 'ci' })),
    ).toBe(`CALIPER_NOT_FOUND: ${missing}: cannot read the model file (ENOENT)`);
    expect(await failure(registry.model('fraud'))).toBe(
      'CALIPER_MODEL_NOT_FOUND: model "fraud" is not registered (registered models: none)',
    );
  });

  it('refuses a model file without read permission', async () => {
    if (process.getuid?.() === 0) return; // root reads anything
    const locked = fixture.file('locked.onnx', 'x');
    chmodSync(locked, 0o000);
    expect(await failure(registry.register({ file: locked, configFile: FRAUD_YAML, name: 'fraud' }))).toContain(
      'cannot read the model file (EACCES)',
    );
  });

  it('lists models by name with their versions, and omits the description when none was given', async () => {
    await registerVersions(1, 'zeta');
    await registry.register({
      file: FRAUD_ONNX,
      configFile: FRAUD_YAML,
      name: 'alpha',
      description: 'first',
      actor: 'ci',
    });
    const models = await registry.listModels();
    expect(models.map((m) => [m.name, m.versions])).toEqual([
      ['alpha', [1]],
      ['zeta', [1]],
    ]);
    const version = await registry.version('zeta', 1);
    expect('description' in version).toBe(false);
    expect(version.createdBy).toBe('ci');
    expect((await registry.version('alpha', 1)).description).toBe('first');
  });
});

describe('deleting', () => {
  it('guards a version in Production or Staging or under an alias, naming why, unless forced', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Staging', { actor: 'ci' });
    await registry.setAlias('fraud', 'champion', 3, 'ci');
    expect(await failure(registry.deleteVersion('fraud', 1))).toBe(
      'CALIPER_CONFLICT: models:/fraud/1: not deleted because it is in stage Production; archive it first or pass --force',
    );
    expect(await failure(registry.deleteVersion('fraud', 2))).toContain('because it is in stage Staging');
    expect(await failure(registry.deleteVersion('fraud', 3))).toContain('because aliases point at it (champion)');
    expect(await failure(registry.deleteModel('fraud'))).toBe(
      'CALIPER_CONFLICT: model "fraud": not deleted because version 1: it is in stage Production; pass --force',
    );
    await registry.deleteVersion('fraud', 3, { force: true, actor: 'ops' });
    expect((await registry.model('fraud')).aliases).toEqual({});
    const deleted = (await registry.history('fraud')).filter((h) => h.event === 'version_deleted');
    expect(deleted).toEqual([expect.objectContaining({ version: 3, from: 'None', actor: 'ops' })]);
  });

  it('deletes an archived version without force, and the artifact only once no version uses it', async () => {
    await registerVersions(2);
    const store = new ArtifactStore(fixture.home);
    const sha = (await registry.version('fraud', 1)).sha256;
    await registry.archive('fraud', 1, 'ci');
    await registry.deleteVersion('fraud', 1, { actor: 'ci' });
    expect(await store.has(sha)).toBe(true);
    await registry.deleteVersion('fraud', 2, { actor: 'ci' });
    expect(await store.has(sha)).toBe(false);
  });

  it('deleteModel with force removes every version, alias, traffic split and artifact, and records it', async () => {
    await registerVersions(2);
    const variant = fraudVariant(fixture, 'b');
    await registry.register({ file: variant, configFile: FRAUD_YAML, name: 'fraud', actor: 'ci' });
    await registry.setStage('fraud', 3, 'Production', { actor: 'ci' });
    await registry.setAlias('fraud', 'champion', 3, 'ci');
    await registry.setTraffic('fraud', { canary: { target: { kind: 'version', version: 2 }, weight: 0.2 } }, 'ci');
    const shas = (await registry.versions('fraud')).map((v) => v.sha256);
    expect(new Set(shas).size).toBe(2);
    await registry.deleteModel('fraud', { force: true, actor: 'ops' });
    expect(await registry.listModels()).toEqual([]);
    const store = new ArtifactStore(fixture.home);
    for (const sha of shas) expect(await store.has(sha)).toBe(false);
    expect(await registry.traffic('fraud')).toEqual({});
    const history = await registry.history('fraud');
    expect(history.at(-1)).toMatchObject({ event: 'model_deleted', from: 'versions 1,2,3', actor: 'ops' });
    expect(history.at(-1)!.version).toBeUndefined();
  });

  it('names an unknown model for history, traffic and deletion', async () => {
    expect(await failure(registry.history('ghost'))).toBe(
      'CALIPER_MODEL_NOT_FOUND: model "ghost" is not registered (registered models: none)',
    );
    expect(await failure(registry.deleteModel('ghost'))).toContain('model "ghost" is not registered');
    expect(await failure(registry.setTraffic('ghost', {}, 'ci'))).toContain('model "ghost" is not registered');
  });
});

describe('traffic', () => {
  it('refuses a weight or fraction outside 0..1, naming the field', async () => {
    await registerVersions(1);
    const target = { kind: 'version' as const, version: 1 };
    for (const weight of [-0.01, 1.01, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(await failure(registry.setTraffic('fraud', { canary: { target, weight } }, 'ci'))).toBe(
        `CALIPER_INVALID_INPUT: canary.weight: expected a fraction from 0 to 1, got ${weight}`,
      );
    }
    expect(await failure(registry.setTraffic('fraud', { shadow: { target, fraction: 2 } }, 'ci'))).toBe(
      'CALIPER_INVALID_INPUT: shadow.fraction: expected a fraction from 0 to 1, got 2',
    );
    for (const weight of [0, 1]) {
      expect(await registry.setTraffic('fraud', { canary: { target, weight } }, 'ci')).toEqual({
        canary: { target, weight },
      });
    }
  });

  it('records each change with what it replaced, in words', async () => {
    await registerVersions(2);
    await registry.setTraffic(
      'fraud',
      {
        canary: { target: { kind: 'version', version: 2 }, weight: 0.125 },
        shadow: { target: { kind: 'alias', alias: 'next' }, fraction: 0.5 },
      },
      'ops',
    );
    await registry.setTraffic('fraud', {}, 'ops');
    const changes = (await registry.history('fraud')).filter((h) => h.event === 'traffic').map((h) => [h.from, h.to]);
    expect(changes).toEqual([
      ['all traffic to the served version', 'canary 2 12.5%, shadow @next 50%'],
      ['canary 2 12.5%, shadow @next 50%', 'all traffic to the served version'],
    ]);
    expect(describeTraffic({ shadow: { target: { kind: 'stage', stage: 'Staging' }, fraction: 0.001 } })).toBe(
      'shadow Staging 0.1%',
    );
    expect(await registry.traffic('fraud')).toEqual({});
  });
});

describe('replicas', () => {
  it('keeps one row per model, host and pid, with the optional fields only when set', async () => {
    await registerVersions(1);
    await registry.recordReplica({
      model: 'fraud',
      host: 'a',
      pid: 1,
      target: 'models:/fraud/Production',
      state: 'loading',
    });
    await registry.recordReplica({
      model: 'fraud',
      host: 'a',
      pid: 1,
      target: 'models:/fraud/Production',
      state: 'ready',
      version: 1,
      since: '2026-01-01T00:00:00.000Z',
    });
    await registry.recordReplica({
      model: 'fraud',
      host: 'b',
      pid: 2,
      target: 'models:/fraud/Production',
      state: 'failed',
      failedVersion: 1,
      reason: 'boom',
    });
    const rows = await registry.replicas('fraud');
    expect(rows).toEqual([
      expect.objectContaining({ host: 'a', pid: 1, state: 'ready', version: 1, since: '2026-01-01T00:00:00.000Z' }),
      expect.objectContaining({ host: 'b', pid: 2, state: 'failed', failedVersion: 1, reason: 'boom' }),
    ]);
    expect('failedVersion' in rows[0]!).toBe(false);
    expect('reason' in rows[0]!).toBe(false);
    expect('version' in rows[1]!).toBe(false);
    expect('since' in rows[1]!).toBe(false);
    await registry.removeReplica('b', 2, 'other-model');
    expect(await registry.replicas('fraud')).toHaveLength(2);
    await registry.removeReplica('b', 2, 'fraud');
    expect((await registry.replicas('fraud')).map((r) => r.host)).toEqual(['a']);
    await registry.removeReplica('a', 1);
    expect(await registry.replicas('fraud')).toEqual([]);
  });
});

describe('what a user reads back', () => {
  it('lists every version of a stage in the error for a stage with none, and a model without a description has none', async () => {
    await registerVersions(3);
    await registry.setStage('fraud', 1, 'Production', { actor: 'ci' });
    await registry.setStage('fraud', 2, 'Production', { actor: 'ci' });
    expect(await failure(registry.resolve('fraud', { kind: 'stage', stage: 'Staging' }))).toBe(
      'CALIPER_VERSION_NOT_FOUND: models:/fraud/Staging: model "fraud" has no version in stage Staging (Production: 1, 2)',
    );
    const model = await registry.model('fraud');
    expect('description' in model).toBe(false);
    expect('description' in (await registry.listModels())[0]!).toBe(false);
  });

  it('records who archived a version', async () => {
    await registerVersions(1);
    await registry.archive('fraud', 1, 'ops');
    expect((await registry.history('fraud')).at(-1)).toMatchObject({
      event: 'stage',
      from: 'None',
      to: 'Archived',
      actor: 'ops',
    });
  });

  it('names every alias that holds a version back from deletion', async () => {
    await registerVersions(1);
    await registry.setAlias('fraud', 'champion', 1, 'ci');
    await registry.setAlias('fraud', 'stable', 1, 'ci');
    expect(await failure(registry.deleteVersion('fraud', 1))).toBe(
      'CALIPER_CONFLICT: models:/fraud/1: not deleted because aliases point at it (champion, stable); archive it first or pass --force',
    );
  });

  it('deletes a model whose versions nothing holds without force, and names the held version, not the first', async () => {
    await registerVersions(2);
    await registry.setStage('fraud', 2, 'Staging', { actor: 'ci' });
    expect(await failure(registry.deleteModel('fraud'))).toBe(
      'CALIPER_CONFLICT: model "fraud": not deleted because version 2: it is in stage Staging; pass --force',
    );
    await registry.setStage('fraud', 2, 'Archived', { actor: 'ci' });
    await registry.deleteModel('fraud', { actor: 'ci' });
    expect(await registry.listModels()).toEqual([]);
  });
});
