import type { preHandlerHookHandler } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

/**
 * What a `serve --workers` worker relies on to cost an inference request nothing: headers set by the server's own
 * onRequest hook, and hooks added to chosen routes only as they are registered (not app-wide hooks that every
 * request runs).
 */
describe('startServing: responseHeaders and onRoute', () => {
  let server: RunningServer;
  const seen: string[] = [];
  let metricsHookCalls = 0;
  const metricsHook: preHandlerHookHandler = (_request, reply, done) => {
    metricsHookCalls++;
    reply.header('x-hooked', 'metrics');
    done();
  };

  beforeAll(async () => {
    server = await startServing({
      paths: ['examples/fraud-detector'],
      port: 0,
      logger: quietLogger(),
      responseHeaders: { 'x-test-slot': '7' },
      onRoute: (route) => {
        seen.push(`${route.method} ${route.url}`);
        if (route.url === '/metrics') route.preHandler = metricsHook;
      },
    });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  it('sets the headers on every response: inference, errors, health', async () => {
    const predicted = await fetch(`${server.url}/models/fraud_detector/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ transaction_amount: 12, merchant_category: 'fuel', time_since_last_txn: 40 }),
    });
    expect(predicted.status).toBe(200);
    expect(predicted.headers.get('x-test-slot')).toBe('7');
    expect(predicted.headers.get('x-request-id')).toBeTruthy();
    const missing = await fetch(`${server.url}/no/such/route`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-test-slot')).toBe('7');
    const bad = await fetch(`${server.url}/models/fraud_detector/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"transaction_amount": -1}',
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('x-test-slot')).toBe('7');
    expect((await fetch(`${server.url}/v2/health/ready`)).headers.get('x-test-slot')).toBe('7');
  });

  it('shows every route to onRoute, and a hook it adds runs on that route only', async () => {
    expect(seen).toEqual(
      expect.arrayContaining([
        'POST /models/:name/predict',
        'GET /metrics',
        'GET /v2/models/:name/stats',
        'GET /models/:name/sla',
      ]),
    );
    const before = metricsHookCalls;
    const predicted = await fetch(`${server.url}/models/fraud_detector/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ transaction_amount: 12, merchant_category: 'fuel', time_since_last_txn: 40 }),
    });
    expect(predicted.status).toBe(200);
    expect(predicted.headers.get('x-hooked')).toBeNull();
    expect((await fetch(`${server.url}/v2/models/fraud_detector/stats`)).headers.get('x-hooked')).toBeNull();
    expect(metricsHookCalls).toBe(before);
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('x-hooked')).toBe('metrics');
    expect(metricsHookCalls).toBe(before + 1);
  });
});
