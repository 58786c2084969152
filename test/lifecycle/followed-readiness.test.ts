import { afterAll, describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { startServing } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from '../registry/registry-fixture.ts';

describe('strict readiness covers models followed from the registry', () => {
  const fixture = new RegistryFixture();
  afterAll(() => fixture.remove());

  it('is not ready while a followed model serves nothing, and names it; --no-strict-readiness relaxes it', async () => {
    const writer = ModelRegistry.open(fixture.home);
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.setStage('fraud', 1, 'Production', { actor: 'test' });
    await writer.close();
    const uris = ['models:/fraud/Production', 'models:/ghost/Production'];
    const strict = await startServing({
      paths: [],
      modelUris: uris,
      registry: fixture.home,
      registryPollMs: 25,
      port: 0,
      logger: quietLogger(),
    });
    try {
      const response = await fetch(`${strict.url}/v2/health/ready`);
      expect(response.status).toBe(503);
      const body = (await response.json()) as { ready: boolean; failed_models: { name: string; reason: string }[] };
      expect(body.ready).toBe(false);
      expect(body.failed_models).toEqual([
        expect.objectContaining({ name: 'ghost', reason: expect.stringMatching(/ghost/) }),
      ]);
      expect(
        (
          await fetch(`${strict.url}/models/fraud/predict`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ transaction_amount: 12, merchant_category: 'fuel', time_since_last_txn: 60 }),
          })
        ).status,
      ).toBe(200);
    } finally {
      await strict.close();
    }
    const relaxed = await startServing({
      paths: [],
      modelUris: uris,
      registry: fixture.home,
      registryPollMs: 25,
      port: 0,
      strictReadiness: false,
      logger: quietLogger(),
    });
    try {
      expect((await fetch(`${relaxed.url}/v2/health/ready`)).status).toBe(200);
    } finally {
      await relaxed.close();
    }
  });
});
