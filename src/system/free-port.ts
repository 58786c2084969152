import { createServer } from 'node:net';

/**
 * A TCP port free right now on `host` (default loopback; the OS picks it), for servers started by tests,
 * benchmarks and the tuner, and for the ports `serve --workers` shares out.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
