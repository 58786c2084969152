import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from './registry-fixture.ts';

/** Servers following a PostgreSQL registry hear promotes through LISTEN/NOTIFY, and poll when that connection is lost. */
describe('following a PostgreSQL registry', () => {
  const fixture = new RegistryFixture();
  const artifacts = join(fixture.dir, 'artifacts');
  let postgres: PrivatePostgres;
  let uri: string;
  let admin: ModelRegistry;
  let listening: RunningServer;
  let polling: RunningServer;

  const waitFor = async (check: () => boolean, what: string, timeoutMs: number): Promise<number> => {
    const started = Date.now();
    while (!check()) {
      if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return Date.now() - started;
  };
  const served = (server: RunningServer): number | undefined => server.follower!.statusOf('fraud')?.servedVersion;

  beforeAll(async () => {
    postgres = await startPrivatePostgres();
    uri = await postgres.createDatabase('followed');
    admin = await ModelRegistry.connect({ registry: uri, artifacts });
    await admin.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await admin.register({ file: fraudVariant(fixture, 'two'), configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await admin.setStage('fraud', 1, 'Production', { actor: 'test' });
    const common = {
      paths: [],
      modelUris: ['models:/fraud/Production'],
      registry: uri,
      artifacts,
      port: 0,
      logger: quietLogger(),
    };
    // One server polls only once a minute: it can only be quick through notifications.
    listening = await startServing({ ...common, registryPollMs: 60_000 });
    polling = await startServing({ ...common, registryPollMs: 200 });
  }, 120_000);
  afterAll(async () => {
    await Promise.all([listening?.close(), polling?.close()]);
    await admin?.close();
    await postgres?.dispose();
    fixture.remove();
  });

  it('swaps on NOTIFY, long before its next poll', async () => {
    expect(listening.follower!.listening).toBe(true);
    expect(served(listening)).toBe(1);
    await admin.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'test' });
    const ms = await waitFor(() => served(listening) === 2, 'the notified swap', 10_000);
    expect(ms).toBeLessThan(10_000);
    await waitFor(() => served(polling) === 2, 'the polling server', 10_000);
  });

  it('when the LISTEN connection is killed, polling carries on and the listener reconnects and catches up', async () => {
    const client = new pg.Client({ connectionString: uri });
    await client.connect();
    const killed = await client.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN caliper_registry'",
    );
    await client.end();
    expect(killed.rowCount).toBe(2);
    await waitFor(
      () => !listening.follower!.listening && !polling.follower!.listening,
      'both followers to notice',
      10_000,
    );
    await admin.setStage('fraud', 1, 'Production', { archiveExisting: true, actor: 'test' });
    // The polling server sees it on its next poll; the other reconnects (after 2 s) and reads what it missed.
    await waitFor(() => served(polling) === 1, 'the polling swap', 5_000);
    await waitFor(
      () => served(listening) === 1 && listening.follower!.listening,
      'the reconnected listener to catch up',
      10_000,
    );
    // And notifications work again.
    await admin.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'test' });
    await waitFor(() => served(listening) === 2, 'a notified swap after reconnecting', 10_000);
  });
});
