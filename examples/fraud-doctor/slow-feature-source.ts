import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFeatureFile } from '../../src/features/feature-loader.ts';
import { freePort } from '../../src/system/free-port.ts';

/**
 * A TCP proxy that holds every chunk from the client for `delayMs` before passing it on (answers pass at once):
 * a feature store that is slow to reach, as a remote database is. Order is kept (equal delays fire in order).
 */
export async function startDelayProxy(
  targetPort: number,
  delayMs: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk) => {
      setTimeout(() => {
        if (!upstream.destroyed) upstream.write(chunk);
      }, delayMs);
    });
    upstream.on('data', (chunk) => {
      if (!client.destroyed) client.write(chunk);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The seed's slow feature source, reproduced: a private redis-server holding the users' features (database 0),
 * reached through a proxy that holds each lookup `delayMs` (a remote store), and the same Redis's database 1 as the
 * near store a doctor may move the features to. Needs `redis-server` on the PATH.
 */
export async function startSlowFeatureSource(
  usersCsv: string,
  delayMs: number,
): Promise<{ slowUrl: string; nearUrl: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'caliper-slow-features-'));
  const redis: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  await waitForPort(port, 10_000);
  await loadFeatureFile({ file: usersCsv, store: `redis://127.0.0.1:${port}/0`, key: 'user:{user_id}' });
  const proxy = await startDelayProxy(port, delayMs);
  return {
    slowUrl: `redis://127.0.0.1:${proxy.port}/0`,
    nearUrl: `redis://127.0.0.1:${port}/1`,
    stop: async () => {
      await proxy.close();
      await new Promise<void>((resolve) => {
        redis.once('exit', () => resolve());
        redis.kill('SIGKILL');
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
