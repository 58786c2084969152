import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerModelsCommand } from '../../src/cli/models.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { registryRows } from '../../src/registry/registry-transfer.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from './registry-fixture.ts';

/** `caliper models …` in this process; resolves with stdout, rejects with the one-line reason. */
async function caliper(...args: string[]): Promise<string> {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerModelsCommand(program);
  let stdout = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'caliper', 'models', ...args]);
    return stdout;
  } finally {
    process.stdout.write = write;
  }
}

describe('caliper models export / import between backends', () => {
  const fixture = new RegistryFixture();
  let postgres: PrivatePostgres;
  let pgUri: string;
  const pgArtifacts = join(fixture.dir, 'pg-artifacts');
  const backHome = join(fixture.dir, 'back');

  beforeAll(async () => {
    postgres = await startPrivatePostgres();
    pgUri = await postgres.createDatabase('moved');
    // A registry with every kind of row: stages, archived versions, aliases moved, tags, metrics, traffic, deletions.
    const sqlite = ModelRegistry.open(fixture.home);
    await sqlite.register({
      file: FRAUD_ONNX,
      configFile: FRAUD_YAML,
      name: 'fraud',
      description: 'first',
      tags: { team: 'risk', data: '2026-10' },
      metrics: { auc: 0.91, latency_ms: 0.25 },
      actor: 'alice',
    });
    await sqlite.register({
      file: fraudVariant(fixture, 'two'),
      configFile: FRAUD_YAML,
      name: 'fraud',
      metrics: { auc: 0.93 },
      actor: 'bob',
    });
    await sqlite.register({
      file: fraudVariant(fixture, 'three'),
      configFile: FRAUD_YAML,
      name: 'fraud',
      tags: { candidate: 'yes' },
      actor: 'bob',
    });
    await sqlite.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'bob' });
    await sqlite.setStage('fraud', 1, 'Production', { actor: 'alice' });
    await sqlite.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'alice' });
    await sqlite.setStage('fraud', 3, 'Staging', { actor: 'bob' });
    await sqlite.setAlias('fraud', 'champion', 2, 'alice');
    await sqlite.setAlias('fraud', 'challenger', 1, 'bob');
    await sqlite.setAlias('fraud', 'challenger', 3, 'bob');
    await sqlite.setTraffic(
      'fraud',
      {
        canary: { target: { kind: 'alias', alias: 'challenger' }, weight: 0.1 },
        shadow: { target: { kind: 'version', version: 3 }, fraction: 0.25 },
      },
      'alice',
    );
    await sqlite.deleteVersion('fraud', 4, { actor: 'bob' });
    await sqlite.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'scorer', actor: 'carol' });
    await sqlite.setAlias('scorer', 'prod', 1, 'carol');
    await sqlite.register({
      file: fraudVariant(fixture, 'gone'),
      configFile: FRAUD_YAML,
      name: 'gone',
      actor: 'carol',
    });
    await sqlite.deleteModel('gone', { actor: 'carol' });
    await sqlite.close();
  }, 120_000);
  afterAll(async () => {
    await postgres?.dispose();
    fixture.remove();
  });

  const rowsOf = async (registry: string, artifacts?: string): Promise<Awaited<ReturnType<typeof registryRows>>> => {
    const handle = await ModelRegistry.connect({ registry, ...(artifacts ? { artifacts } : {}) });
    try {
      return await registryRows(handle.database);
    } finally {
      await handle.close();
    }
  };

  it('SQLite → PostgreSQL → SQLite keeps every version, stage, alias, tag, metric, traffic and history row, and the artifacts', async () => {
    const original = await rowsOf(fixture.home);
    expect(original.history.length).toBeGreaterThan(15);

    const exported = JSON.parse(
      await caliper('export', pgUri, '--to-artifacts', pgArtifacts, '--registry', fixture.home, '--json'),
    ) as Record<string, unknown>;
    expect(exported).toMatchObject({
      models: 2,
      versions: 4,
      aliases: 3,
      historyRows: original.history.length,
      artifactsCopied: 3,
    });
    expect(await rowsOf(pgUri, pgArtifacts)).toEqual(original);

    // Every version's artifact is in the new store and checks out by its sha256.
    const moved = await ModelRegistry.connect({ registry: pgUri, artifacts: pgArtifacts });
    try {
      for (const v of [...(await moved.versions('fraud')), ...(await moved.versions('scorer'))])
        expect(await moved.artifactPath(v)).toContain(pgArtifacts);
      expect((await moved.resolve('fraud', { kind: 'alias', alias: 'challenger' })).version).toBe(3);
      expect(await moved.version('fraud', 1)).toMatchObject({
        stage: 'Archived',
        tags: { team: 'risk', data: '2026-10' },
        metrics: { auc: 0.91, latency_ms: 0.25 },
        description: 'first',
        createdBy: 'alice',
      });
      // New writes continue the history after the copied rows.
      await moved.setStage('fraud', 3, 'Production', { archiveExisting: true, actor: 'dave' });
      const history = await moved.history('fraud');
      expect(history.at(-1)!.id).toBeGreaterThan(Math.max(...original.history.map((h) => Number(h.id))));
    } finally {
      await moved.close();
    }

    const imported = JSON.parse(
      await caliper('import', pgUri, '--from-artifacts', pgArtifacts, '--registry', backHome, '--json'),
    ) as Record<string, unknown>;
    expect(imported).toMatchObject({ models: 2, versions: 4 });
    expect(await rowsOf(backHome)).toEqual(await rowsOf(pgUri, pgArtifacts));
  });

  it('refuses to import models that already exist, naming them, and copies nothing', async () => {
    const before = await rowsOf(pgUri, pgArtifacts);
    await expect(caliper('import', fixture.home, '--registry', pgUri, '--artifacts', pgArtifacts)).rejects.toThrow(
      /already has models fraud, scorer; nothing was copied/,
    );
    expect(await rowsOf(pgUri, pgArtifacts)).toEqual(before);
    await expect(caliper('export', fixture.home, '--registry', fixture.home)).rejects.toThrow(
      /is the registry being exported/,
    );
  });
});
