import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { formatModelUri, parseModelUri } from '../../src/registry/model-uri.ts';
import { RegistryFixture } from './registry-fixture.ts';
import { describeRegistryContract } from './registry-contract.ts';

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected an error');
};

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected a rejection');
}

describe('model URIs', () => {
  it('parses every form', () => {
    expect(parseModelUri('models:/fraud/3')).toEqual({ name: 'fraud', selector: { kind: 'version', version: 3 } });
    expect(parseModelUri('models:/fraud/Production')).toEqual({
      name: 'fraud',
      selector: { kind: 'stage', stage: 'Production' },
    });
    expect(parseModelUri('models:/fraud/staging')).toEqual({
      name: 'fraud',
      selector: { kind: 'stage', stage: 'Staging' },
    });
    expect(parseModelUri('models:/fraud@champion')).toEqual({
      name: 'fraud',
      selector: { kind: 'alias', alias: 'champion' },
    });
    expect(parseModelUri('models:/fraud/latest')).toEqual({ name: 'fraud', selector: { kind: 'latest' } });
    for (const uri of [
      'models:/fraud/3',
      'models:/fraud/Production',
      'models:/fraud@champion',
      'models:/fraud/latest',
    ]) {
      expect(formatModelUri(parseModelUri(uri))).toBe(uri);
    }
  });

  it('rejects malformed URIs with the accepted forms', () => {
    for (const bad of [
      'fraud/3',
      'models:/fraud',
      'models:/fraud/0',
      'models:/fraud/Prod',
      'models:/fraud/3/4',
      'models:/@x',
      'models:/fraud@Production',
      'models:/fraud@',
    ]) {
      expect(codeOf(() => parseModelUri(bad))).toMatch(/^CALIPER_INVALID_INPUT: /);
    }
    expect(codeOf(() => parseModelUri('models:/fraud/Prod'))).toContain('expected models:/NAME/VERSION');
  });
});

// The registry in a folder (SQLite); model-registry-postgres.test.ts runs the same contract on PostgreSQL.
describeRegistryContract('sqlite');

describe('registry locations', () => {
  it('refuses a --registry or --artifacts URI of an unknown kind, naming the option', async () => {
    expect(await rejection(ModelRegistry.connect({ registry: 'mysql://x@y/z' }))).toMatch(
      /^CALIPER_INVALID_INPUT: --registry: .* neither a folder nor a postgres:\/\/ URI/,
    );
    expect(
      await rejection(ModelRegistry.connect({ registry: join(scratch.dir, 'x'), artifacts: 'gs://bucket/x' })),
    ).toMatch(/^CALIPER_INVALID_INPUT: --artifacts: /);
    expect(
      await rejection(
        ModelRegistry.connect({ registry: join(scratch.dir, 'y'), artifacts: 's3://bucket/x?colour=red' }),
      ),
    ).toMatch(/^CALIPER_INVALID_INPUT: --artifacts: unknown parameter "colour"/);
  });
});

const scratch = new RegistryFixture();
afterAll(() => scratch.remove());
