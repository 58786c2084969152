import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/lifecycle/model-repository.ts';
import { buildServer } from '../../src/server/app.ts';

/**
 * Each request's logger (request.log) is made only when the request logs: requests that log nothing build no pino
 * child, and one that does logs with its request id bound, as fastify's own child logger would.
 */

/** A real pino logger writing JSON lines into `lines`, counting the children made of it. */
function countingLogger(lines: Record<string, unknown>[]) {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  let children = 0;
  const child = logger.child.bind(logger);
  logger.child = ((...args: Parameters<typeof child>) => {
    children++;
    return child(...args);
  }) as typeof logger.child;
  return { logger, children: () => children };
}

describe("a request's logger", () => {
  it('is not built for requests that log nothing', async () => {
    const lines: Record<string, unknown>[] = [];
    const { logger, children } = countingLogger(lines);
    const { app } = await buildServer({ repository: new ModelRepository(), logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const before = children();
    for (let i = 0; i < 20; i++) expect((await fetch(`${url}/v2/health/live`)).status).toBe(200);
    expect(
      (
        await fetch(`${url}/models/none/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        })
      ).status,
    ).toBe(404);
    expect(children() - before).toBe(0);
    await app.close();
  });

  it("logs a server error with the request's id bound, as sent in x-request-id", async () => {
    const lines: Record<string, unknown>[] = [];
    const { logger } = countingLogger(lines);
    const { app } = await buildServer({ repository: new ModelRepository(), logger });
    app.get('/broken', { config: { protection: 'open' } }, () => {
      throw new Error('a fault inside a handler');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const response = await fetch(`${url}/broken`, { headers: { 'x-request-id': 'req-broken-1' } });
    expect(response.status).toBe(500);
    expect(response.headers.get('x-request-id')).toBe('req-broken-1');
    const logged = lines.filter((l) => l.level === 50);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ reqId: 'req-broken-1' });
    expect((logged[0]!.err as { message: string }).message).toBe('a fault inside a handler');
    await app.close();
  });
});
