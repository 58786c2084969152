import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { parseSelector } from '../../src/registry/model-uri.ts';
import { startServing } from '../../src/server/serving.ts';
import { FRAUD_ONNX, FRAUD_YAML, fraudVariant, RegistryFixture } from '../registry/registry-fixture.ts';

describe('a server following the registry says which traffic split it applies', () => {
  const fixture = new RegistryFixture();
  afterAll(() => fixture.remove());

  it('logs each change of canary/shadow, and a target it cannot apply with the reason', async () => {
    const writer = ModelRegistry.open(fixture.home);
    await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.register({ file: fraudVariant(fixture, 'two'), configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.setStage('fraud', 1, 'Production', { actor: 'test' });
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const server = await startServing({
      paths: [],
      modelUris: ['models:/fraud/Production'],
      registry: fixture.home,
      registryPollMs: 25,
      port: 0,
      logger: pino({ level: 'info' }, sink),
    });
    const messages = (): string[] =>
      lines.map((l) => (JSON.parse(l) as { msg: string }).msg).filter((m) => m.includes('traffic'));
    const waitForMessage = async (pattern: RegExp): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!messages().some((m) => pattern.test(m))) {
        if (Date.now() > deadline)
          throw new Error(`no log line matching ${pattern}; traffic lines: ${messages().join(' | ')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    try {
      await writer.setTraffic('fraud', { canary: { target: parseSelector('fraud', '2'), weight: 0.1 } });
      await waitForMessage(/^model fraud traffic: canary version 2 10%$/);
      // A target written past the CLI's check (another tool, a deleted alias) is reported, not silently dropped.
      await writer.setTraffic('fraud', {
        canary: { target: parseSelector('fraud', '2'), weight: 0.1 },
        shadow: { target: parseSelector('fraud', '@gone'), fraction: 0.05 },
      });
      await writer.setTraffic('fraud', { shadow: { target: parseSelector('fraud', '@gone'), fraction: 0.05 } });
      await waitForMessage(/^model fraud traffic: none; shadow @gone not applied \(no such version\)$/);
    } finally {
      await server.close();
      await writer.close();
    }
  });
});
