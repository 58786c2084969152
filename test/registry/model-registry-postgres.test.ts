import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { RegistryFixture } from './registry-fixture.ts';
import { describeRegistryContract } from './registry-contract.ts';

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected a rejection');
}

let postgres: PrivatePostgres;
beforeAll(async () => {
  postgres = await startPrivatePostgres();
});
afterAll(async () => {
  await postgres?.dispose();
});

// The contract of model-registry.test.ts (SQLite), on a private PostgreSQL server.
describeRegistryContract('postgres', () => postgres.createDatabase('model_registry'));

describe('registry locations (PostgreSQL)', () => {
  it('takes the registry and artifact store from CALIPER_REGISTRY and CALIPER_ARTIFACTS when no option names them', async () => {
    const saved = { registry: process.env.CALIPER_REGISTRY, artifacts: process.env.CALIPER_ARTIFACTS };
    process.env.CALIPER_REGISTRY = await postgres.createDatabase('from_env');
    process.env.CALIPER_ARTIFACTS = join(scratch.dir, 'env-artifacts');
    try {
      const registry = await ModelRegistry.connect();
      try {
        expect(registry.database.dialect).toBe('postgres');
        expect(registry.location).toMatch(/\/from_env$/);
        expect(registry.artifacts.location).toBe(join(scratch.dir, 'env-artifacts', 'sha256'));
      } finally {
        await registry.close();
      }
      // An option still wins over the environment.
      const folder = await ModelRegistry.connect({
        registry: join(scratch.dir, 'folder'),
        artifacts: join(scratch.dir, 'folder-artifacts'),
      });
      expect(folder.database.dialect).toBe('sqlite');
      await folder.close();
    } finally {
      for (const [key, value] of [
        ['CALIPER_REGISTRY', saved.registry],
        ['CALIPER_ARTIFACTS', saved.artifacts],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it('says the registry is unavailable (503) when PostgreSQL cannot be reached, without the password', async () => {
    const message = await rejection(ModelRegistry.connect({ registry: 'postgres://caliper:secret@127.0.0.1:1/none' }));
    expect(message).toMatch(/^CALIPER_REGISTRY_UNAVAILABLE: registry postgres:\/\/caliper:\*\*\*@127\.0\.0\.1:1\/none/);
    expect(message).not.toContain('secret');
  });
});

const scratch = new RegistryFixture();
afterAll(() => scratch.remove());
