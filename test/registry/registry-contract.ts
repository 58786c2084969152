import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { ArtifactStore } from '../../src/registry/artifact-store.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { resolveModelUri } from '../../src/registry/uri-resolver.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from './registry-fixture.ts';

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected a rejection');
}

/**
 * The registry's behaviour, the same from both backends: SQLite in a folder (model-registry.test.ts), PostgreSQL
 * through its URI (model-registry-postgres.test.ts); artifacts in a folder either way. For PostgreSQL,
 * `postgresDatabase` creates the empty database the registry is made in and answers its URI.
 */
export function describeRegistryContract(
  backend: 'sqlite' | 'postgres',
  postgresDatabase: () => Promise<string> = () => Promise.reject(new Error('no PostgreSQL for this registry')),
): void {
  describe(`model registry (${backend})`, () => {
    const fixture = new RegistryFixture();
    const artifactsDir = join(fixture.dir, 'shared-artifacts');
    let location: string;
    let artifacts: string | undefined;
    let registry: ModelRegistry;
    let store: ArtifactStore;
    const connect = (): Promise<ModelRegistry> =>
      ModelRegistry.connect({ registry: location, ...(artifacts ? { artifacts } : {}) });
    /** Three versions of `name` (registered here, so no test depends on another's changes), optionally promoted:
     * 1 Production then Archived, 2 Production (archiving 1), 3 Staging; champion → 2, challenger → 1 then 3. */
    const registerThree = async (name: string, promote = true): Promise<void> => {
      for (let i = 0; i < 3; i++)
        await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name, actor: 'test' });
      if (!promote) return;
      await registry.setStage(name, 1, 'Production', { actor: 'test' });
      await registry.setStage(name, 2, 'Production', { archiveExisting: true, actor: 'test' });
      await registry.setStage(name, 3, 'Staging', { actor: 'test' });
      await registry.setAlias(name, 'champion', 2, 'test');
      await registry.setAlias(name, 'challenger', 1, 'test');
      await registry.setAlias(name, 'challenger', 3, 'test');
    };

    beforeAll(async () => {
      location = backend === 'sqlite' ? fixture.home : await postgresDatabase();
      artifacts = backend === 'sqlite' ? undefined : artifactsDir;
      store =
        backend === 'sqlite'
          ? new ArtifactStore(fixture.home)
          : new ArtifactStore(join(artifactsDir, 'sha256'), { root: true });
      registry = await connect();
      await registry.register({
        file: FRAUD_ONNX,
        configFile: FRAUD_YAML,
        name: 'fraud',
        description: 'first',
        tags: { team: 'risk' },
        metrics: { auc: 0.91 },
        actor: 'test',
      });
      await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
      await registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    });
    afterAll(async () => {
      await registry?.close();
      fixture.remove();
    });

    it('numbers versions from 1 and records source, sha256, size, signature, config, tags and metrics', async () => {
      const v1 = await registry.version('fraud', 1);
      expect(v1).toMatchObject({
        name: 'fraud',
        version: 1,
        stage: 'None',
        description: 'first',
        tags: { team: 'risk' },
        metrics: { auc: 0.91 },
        createdBy: 'test',
      });
      expect(v1.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(v1.size).toBeGreaterThan(100);
      expect(typeof v1.size).toBe('number');
      expect(v1.source).toMatch(/fraud-detector\/1\/model\.onnx$/);
      expect(v1.signature.inputs).toEqual([
        expect.objectContaining({ name: 'features', type: 'float32', shape: [-1, 10] }),
      ]);
      expect(v1.config).toContain('one_hot: merchant_category');
      expect((await registry.model('fraud')).versions).toEqual([1, 2, 3]);
      // The same bytes are stored once, under their hash.
      const shas = new Set((await registry.versions('fraud')).map((v) => v.sha256));
      expect([...shas]).toEqual([v1.sha256]);
      expect(existsSync(store.pathOf(v1.sha256))).toBe(true);
    });

    it('moves stages (archiving the existing ones on request), moves aliases and resolves every selector', async () => {
      await registerThree('staged', false);
      await registry.setStage('staged', 1, 'Production', { actor: 'test' });
      await registry.setStage('staged', 2, 'Production', { archiveExisting: true, actor: 'test' });
      expect((await registry.version('staged', 1)).stage).toBe('Archived');
      await registry.setStage('staged', 3, 'Staging', { actor: 'test' });
      await registry.setAlias('staged', 'champion', 2, 'test');
      await registry.setAlias('staged', 'challenger', 1, 'test');
      await registry.setAlias('staged', 'challenger', 3, 'test');
      expect((await registry.resolve('staged', { kind: 'stage', stage: 'Production' })).version).toBe(2);
      expect((await registry.resolve('staged', { kind: 'stage', stage: 'Staging' })).version).toBe(3);
      expect((await registry.resolve('staged', { kind: 'alias', alias: 'champion' })).version).toBe(2);
      expect((await registry.resolve('staged', { kind: 'alias', alias: 'challenger' })).version).toBe(3);
      expect((await registry.resolve('staged', { kind: 'latest' })).version).toBe(3);
      expect((await registry.resolve('staged', { kind: 'version', version: 1 })).version).toBe(1);
      expect(await registry.model('staged')).toMatchObject({
        stages: { Production: [2], Staging: [3], Archived: [1] },
        aliases: { champion: 2, challenger: 3 },
      });
    });

    it('keeps a full history of transitions and alias moves with who made them', async () => {
      await registerThree('historic');
      const history = (await registry.history('historic')).map((h) => [h.version, h.event, h.from, h.to, h.actor]);
      expect(history).toEqual(
        expect.arrayContaining([
          [1, 'stage', 'None', 'Production', 'test'],
          [1, 'stage', 'Production', 'Archived', 'test'],
          [2, 'stage', 'None', 'Production', 'test'],
          [3, 'alias_set', 'challenger=1', 'challenger=3', 'test'],
        ]),
      );
      expect((await registry.history('historic')).filter((h) => h.event === 'registered')).toHaveLength(3);
    });

    it('keeps traffic weights exactly (no single-precision rounding)', async () => {
      await registry.setTraffic(
        'fraud',
        {
          canary: { target: { kind: 'alias', alias: 'challenger' }, weight: 0.1 },
          shadow: { target: { kind: 'version', version: 3 }, fraction: 0.3 },
        },
        'test',
      );
      expect(await registry.traffic('fraud')).toEqual({
        canary: { target: { kind: 'alias', alias: 'challenger' }, weight: 0.1 },
        shadow: { target: { kind: 'version', version: 3 }, fraction: 0.3 },
      });
      await registry.setTraffic('fraud', {}, 'test');
      expect(await registry.traffic('fraud')).toEqual({});
    });

    it('describes a model and a version, clears a description with an empty text, and names what is unknown', async () => {
      await registerThree('described', false);
      const before = (await registry.model('described')).updatedAt;
      const model = await registry.describe('described', 'Card-fraud scorer for the payments team');
      expect(model).toMatchObject({ name: 'described', description: 'Card-fraud scorer for the payments team' });
      expect(model.updatedAt >= before).toBe(true);
      expect(
        (
          await connect().then(async (other) => {
            const read = await other.model('described');
            await other.close();
            return read;
          })
        ).description,
      ).toBe('Card-fraud scorer for the payments team');
      expect(await registry.describe('described', 'retrained on November data', 2)).toMatchObject({
        version: 2,
        description: 'retrained on November data',
      });
      // Only the named version changed, and the model's own description stayed.
      expect((await registry.versions('described')).map((v) => v.description)).toEqual([
        undefined,
        'retrained on November data',
        undefined,
      ]);
      expect((await registry.model('described')).description).toBe('Card-fraud scorer for the payments team');
      expect((await registry.describe('described', '  ')).description).toBeUndefined();
      expect((await registry.describe('described', '', 2)).description).toBeUndefined();
      expect(await rejection(registry.describe('nobody', 'x'))).toMatch(/^CALIPER_MODEL_NOT_FOUND: model "nobody"/);
      expect(await rejection(registry.describe('described', 'x', 7))).toMatch(
        /^CALIPER_VERSION_NOT_FOUND: model "described" has no version 7/,
      );
    });

    it('names what is unknown: model, version, stage, alias', async () => {
      await registerThree('named');
      expect(await rejection(registry.resolve('nope', { kind: 'latest' }))).toMatch(
        /^CALIPER_MODEL_NOT_FOUND: model "nope" is not registered \(registered models: [a-z, ]*\bnamed\b/,
      );
      expect(await rejection(registry.version('named', 9))).toMatch(
        /^CALIPER_VERSION_NOT_FOUND: model "named" has no version 9 \(versions: 1, 2, 3\)/,
      );
      expect(await rejection(registry.resolve('named', { kind: 'stage', stage: 'None' }))).toMatch(
        /^CALIPER_VERSION_NOT_FOUND: .*no version in stage None/,
      );
      expect(await rejection(registry.resolve('named', { kind: 'alias', alias: 'ghost' }))).toMatch(
        /^CALIPER_NOT_FOUND: models:\/named@ghost: .*no alias "ghost" \(aliases: challenger, champion\)/,
      );
      expect(await rejection(registry.setAlias('fraud', 'Production', 1))).toMatch(
        /^CALIPER_INVALID_INPUT: alias: "Production" is reserved/,
      );
      expect(
        await rejection(registry.setTraffic('fraud', { canary: { target: { kind: 'latest' }, weight: 1.5 } })),
      ).toMatch(/canary.weight: expected a fraction/);
    });

    it('refuses corrupt, truncated and non-ONNX files and mismatching model.yaml without creating a version', async () => {
      const before = (await registry.model('fraud')).versions;
      expect(
        await rejection(registry.register({ file: fixture.truncatedModel(), configFile: FRAUD_YAML, name: 'fraud' })),
      ).toMatch(/^CALIPER_MODEL_LOAD_FAILED: .*truncated\.onnx: not a loadable ONNX model/);
      expect(
        await rejection(
          registry.register({
            file: fixture.file('text.onnx', 'this is not a model'),
            configFile: FRAUD_YAML,
            name: 'fraud',
          }),
        ),
      ).toMatch(/^CALIPER_MODEL_LOAD_FAILED: .*not a loadable ONNX model/);
      expect(
        await rejection(registry.register({ file: FRAUD_ONNX, configFile: fixture.mismatchedConfig(), name: 'fraud' })),
      ).toMatch(
        /^CALIPER_MODEL_LOAD_FAILED: .*mismatch\.yaml: preprocess tensor features: dimension 1 is 10 in the model but model.yaml builds 11 columns/,
      );
      expect(
        await rejection(
          registry.register({
            file: FRAUD_ONNX,
            configFile: fixture.file('bad.yaml', 'name: x\ninputs: 3\n'),
            name: 'fraud',
          }),
        ),
      ).toMatch(/^CALIPER_CONFIG_INVALID: .*bad\.yaml: inputs: expected a mapping/);
      expect(
        await rejection(
          registry.register({ file: fixture.file('empty.onnx', ''), configFile: FRAUD_YAML, name: 'fraud' }),
        ),
      ).toMatch(/^CALIPER_MODEL_LOAD_FAILED/);
      expect(
        await rejection(registry.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'bad name!' })),
      ).toMatch(/^CALIPER_INVALID_INPUT: name:/);
      expect((await registry.model('fraud')).versions).toEqual(before);
      expect(readdirSync(store.root).filter((f) => f.startsWith('.incoming'))).toEqual([]);
    });

    it('resolves URIs to checked files and refuses an artifact whose bytes changed', async () => {
      await registerThree('served');
      const resolved = await resolveModelUri('models:/served@champion', location, artifacts);
      expect(resolved).toMatchObject({ name: 'served', version: 2 });
      expect(resolved.config.name).toBe('served');
      expect(existsSync(resolved.modelPath)).toBe(true);
      expect((await resolveModelUri('models:/served/Production', location, artifacts)).version).toBe(2);
      expect((await resolveModelUri('models:/served/latest', location, artifacts)).version).toBe(3);
      expect((await resolveModelUri('models:/served/1', location, artifacts)).version).toBe(1);

      // Bytes of their own, so spoiling them spoils no other test's artifact.
      const other = await connect();
      const tampered = await other.register({
        file: fraudVariant(fixture, `tamper-${backend}`),
        configFile: FRAUD_YAML,
        name: 'tamper',
      });
      await other.close();
      writeFileSync(store.pathOf(tampered.sha256), 'garbage');
      expect(await rejection(resolveModelUri('models:/tamper/1', location, artifacts))).toMatch(
        /^CALIPER_ARTIFACT_CORRUPT: models:\/tamper\/1: artifact .* is corrupt/,
      );
    });

    it('deletes versions and models, guarding Production and aliased versions unless forced', async () => {
      await registerThree('doomed');
      expect(await rejection(registry.deleteVersion('doomed', 2))).toMatch(/^CALIPER_CONFLICT: .*stage Production/);
      await registry.deleteVersion('doomed', 1);
      expect((await registry.model('doomed')).versions).toEqual([2, 3]);
      expect(await rejection(registry.deleteModel('doomed'))).toMatch(/^CALIPER_CONFLICT/);
      await registry.deleteModel('doomed', { force: true });
      expect(await rejection(registry.model('doomed'))).toMatch(/^CALIPER_MODEL_NOT_FOUND/);
      expect((await registry.history('doomed')).at(-1)).toMatchObject({ event: 'model_deleted' });
    });
  });
}
