import autocannon from 'autocannon';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactStore } from '../../src/registry/artifact-store.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from '../registry/registry-fixture.ts';

const BODY = JSON.stringify({ transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 30 });
const ADMIN = { authorization: 'Bearer admin-secret', 'content-type': 'application/json' };

describe('live rollout from the registry', () => {
  const fixture = new RegistryFixture();
  let writer: ModelRegistry;
  let server: RunningServer;

  const predict = async (
    headers: Record<string, string> = {},
  ): Promise<{ status: number; version?: string; body: Record<string, unknown> }> => {
    const response = await fetch(`${server.url}/models/fraud/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'key-1', ...headers },
      body: BODY,
    });
    const body = (await response.json()) as Record<string, unknown>;
    return { status: response.status, version: body.model_version as string | undefined, body };
  };
  const admin = async (
    path: string,
    body?: unknown,
    headers: Record<string, string> = ADMIN,
  ): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: await response.json() };
  };
  const waitFor = async (check: () => boolean | Promise<boolean>, what: string): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  beforeAll(async () => {
    writer = ModelRegistry.open(fixture.home);
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.register({ file: fraudVariant(fixture, 'two'), configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.setStage('fraud', 1, 'Production', { actor: 'test' });
    server = await startServing({
      paths: [],
      modelUris: ['models:/fraud/Production'],
      registry: fixture.home,
      registryPollMs: 25,
      port: 0,
      logger: quietLogger(),
      auth: { adminToken: 'admin-secret', apiKeys: ['key-1', 'key-2'] },
    });
  });
  afterAll(async () => {
    await server?.close();
    await writer.close();
    fixture.remove();
  });

  it('serves the Production version and names it in each response', async () => {
    expect(await predict()).toMatchObject({ status: 200, version: '1' });
  });

  it('asks for credentials: 401 without, 403 when wrong, for the admin API and for inference keys', async () => {
    expect((await admin('/v2/repository/index', {}, { 'content-type': 'application/json' })).status).toBe(401);
    expect((await admin('/v2/repository/index', {}, { ...ADMIN, authorization: 'Bearer wrong' })).status).toBe(403);
    expect((await admin('/v2/repository/index', {})).status).toBe(200);
    const noKey = await fetch(`${server.url}/models/fraud/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODY,
    });
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('www-authenticate')).toContain('Bearer');
    expect((await predict({ 'x-api-key': 'wrong' })).status).toBe(403);
    expect((await predict({ 'x-api-key': '', authorization: 'Bearer key-2' })).status).toBe(200);
    // Health and metadata stay open.
    expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
  });

  it('switches to a promoted version while a load generator runs, with zero non-2xx responses', async () => {
    const versions = new Map<string, number>();
    const run = autocannon({
      // `requests` (per-request hooks) is missing from autocannon's bundled types.
      url: `${server.url}/models/fraud/predict`,
      connections: 8,
      duration: 3,
      ...({
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': 'key-1' },
            body: BODY,
            onResponse: (_status: number, body: string) => {
              const version = /"model_version":"(\d+)"/.exec(body)?.[1] ?? 'none';
              versions.set(version, (versions.get(version) ?? 0) + 1);
            },
          },
        ],
      } as object),
    });
    setTimeout(() => writer.setStage('fraud', 2, 'Production', { archiveExisting: true, actor: 'cli:test' }), 1000);
    const result = await run;
    expect(result.non2xx).toBe(0);
    expect(result.errors).toBe(0);
    expect(result.requests.total).toBeGreaterThan(200);
    expect(versions.get('1')).toBeGreaterThan(0);
    expect(versions.get('2')).toBeGreaterThan(0);
    expect(versions.has('none')).toBe(false);
    expect(server.repository.get('fraud').defaultVersion).toBe(2);
    // The old version was drained and freed.
    expect([...server.repository.get('fraud').versions.keys()]).toEqual([2]);
    expect((await predict()).version).toBe('2');
  });

  it('keeps the old version serving when the new one fails to load, and reports it in logs, metrics and status', async () => {
    const broken = await writer.register({
      file: fraudVariant(fixture, 'three'),
      configFile: FRAUD_YAML,
      name: 'fraud',
      actor: 'test',
    });
    writeFileSync(new ArtifactStore(fixture.home).pathOf(broken.sha256), 'not the registered bytes');
    await writer.setStage('fraud', broken.version, 'Production', { archiveExisting: true, actor: 'test' });
    await waitFor(() => server.follower!.statusOf('fraud')?.failedVersion === broken.version, 'the failed load');
    expect(server.follower!.statusOf('fraud')).toMatchObject({ state: 'ready', servedVersion: 2, loadFailures: 1 });
    expect(server.follower!.statusOf('fraud')!.reason).toMatch(
      /version 3 failed to load: .*artifact .* is corrupt.*; version 2 keeps serving/,
    );
    expect(await predict()).toMatchObject({ status: 200, version: '2' });
    const index = await admin('/v2/repository/index', {});
    expect(index.body).toEqual([
      expect.objectContaining({
        name: 'fraud',
        version: '2',
        state: 'READY',
        reason: expect.stringContaining('version 3 failed to load'),
      }),
    ]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/caliper_model_load_failures_total\{model="fraud"\} 1/);
    expect(metrics).toMatch(/caliper_model_load_failed\{model="fraud"\} 1/);
    // Recovery: promoting a good version again clears the failure.
    const promoted = await admin('/v2/repository/models/fraud/promote', {
      version: 1,
      stage: 'Production',
      archive_existing: true,
    });
    expect(promoted).toMatchObject({ status: 200, body: { version: 1, stage: 'Production', served_version: 1 } });
    expect(server.follower!.statusOf('fraud')!.reason).toBeUndefined();
    expect((await writer.history('fraud')).at(-1)).toMatchObject({
      event: 'stage',
      to: 'Production',
      actor: expect.stringMatching(/^token:[0-9a-f]{12}$/),
    });
  });

  it('splits canary traffic by weight, sticky per routing key, and mirrors shadow traffic without changing answers', async () => {
    const set = await admin('/v2/repository/models/fraud/traffic', {
      canary: { target: '2', weight: 0.5 },
      shadow: { target: '2', fraction: 1 },
    });
    expect(set).toMatchObject({
      status: 200,
      body: { canary: { target: '2', weight: 0.5 }, registry: { canary: { version: 2 }, shadow: { version: 2 } } },
    });
    const sticky = new Set<string>();
    for (let i = 0; i < 15; i++) sticky.add((await predict({ 'x-caliper-routing-key': 'customer-42' })).version!);
    expect(sticky.size).toBe(1);
    const spread = new Set<string>();
    for (let i = 0; i < 40; i++) spread.add((await predict({ 'x-caliper-routing-key': `customer-${i}` })).version!);
    expect([...spread].sort()).toEqual(['1', '2']);
    await waitFor(() => (server.repository.get('fraud').traffic?.shadow?.stats.mirrored ?? 0) > 5, 'shadow mirrors');
    const stats = server.repository.get('fraud').traffic!.shadow!.stats;
    expect(stats.disagreed).toBe(0);
    expect(stats.agreed).toBeGreaterThan(0);
    expect((await admin('/v2/repository/models/fraud/traffic', { canary: { target: '2', weight: 2 } })).status).toBe(
      400,
    );
    expect(
      (await admin('/v2/repository/models/fraud/traffic', { canary: { target: 'Prod', weight: 0.1 } })).status,
    ).toBe(400);
    expect((await admin('/v2/repository/models/fraud/traffic', {})).status).toBe(200);
    await waitFor(() => server.repository.get('fraud').versions.size === 1, 'the canary to be retired');
  });

  it('unloads and loads a model through the repository extension, and names unknown models', async () => {
    expect(await admin('/v2/repository/models/fraud/unload', {})).toMatchObject({ status: 200 });
    expect(server.repository.has('fraud')).toBe(false);
    expect((await predict()).status).toBe(404);
    expect(await admin('/v2/repository/models/fraud/load', { parameters: { target: '@nothing' } })).toMatchObject({
      status: 400,
    });
    expect(await admin('/v2/repository/models/fraud/load', {})).toMatchObject({
      status: 200,
      body: { name: 'fraud', loaded: true, version: 1 },
    });
    expect((await predict()).version).toBe('1');
    expect((await admin('/v2/repository/models/ghost/load', {})).status).toBe(404);
    expect((await admin('/v2/repository/models/ghost/promote', { version: 1, stage: 'Production' })).status).toBe(404);
    expect((await admin('/v2/repository/models/fraud/promote', { version: 9, stage: 'Production' })).status).toBe(404);
    expect((await admin('/v2/repository/models/fraud/promote', { version: 1, stage: 'Live' })).status).toBe(400);
    expect(
      (await admin('/v2/repository/models/fraud/promote', { version: 1, alias: 'ghost-target', stage: 'Staging' }))
        .status,
    ).toBe(400);
  });
});

describe('admin API without a configured token', () => {
  it('is off: its routes are not registered (404, whatever the token) and inference needs no key', async () => {
    const server = await startServing({ paths: ['examples/fraud-detector'], port: 0, logger: quietLogger() });
    try {
      expect(server.routes.filter((route) => route.protection === 'admin')).toEqual([]);
      const index = await fetch(`${server.url}/v2/repository/index`, {
        method: 'POST',
        headers: { authorization: 'Bearer anything' },
      });
      expect(index.status).toBe(404);
      expect(((await index.json()) as { code: string }).code).toBe('CALIPER_NOT_FOUND');
      const predict = await fetch(`${server.url}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: BODY,
      });
      expect(predict.status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
