import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { freePort } from '../../src/system/free-port.ts';

export interface PrivateS3 {
  readonly port: number;
  /** http://HOST:PORT */
  readonly endpoint: string;
  /** s3://BUCKET/PREFIX?endpoint=…&path_style=true for --artifacts. */
  uri(bucket: string, prefix: string): string;
  /** Stops answering (the store "goes away"); start() brings it back with its objects. */
  stop(): Promise<void>;
  start(): Promise<void>;
  dispose(): Promise<void>;
}

/** The credentials s3rver accepts, as the standard AWS environment variables the SDK reads. */
export function useS3rverCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_REGION = 'us-east-1';
}

/** An S3-compatible server (s3rver, objects in a temporary folder) on a free port, with the given buckets. */
export async function startPrivateS3(buckets: string[], extraAddresses: string[] = []): Promise<PrivateS3> {
  const address = '127.0.0.1';
  const port = await freePort();
  const directory = mkdtempSync(join(tmpdir(), 'caliper-s3-'));
  let server: S3rver | undefined;
  let extra: Server[] = [];
  const start = async (): Promise<void> => {
    server = new S3rver({
      port,
      address,
      silent: true,
      directory,
      configureBuckets: buckets.map((name) => ({ name, configs: [] })),
    });
    await server.run();
    // The same store answering on the test hosts' side of their links too.
    const handler = server.callback();
    extra = await Promise.all(
      extraAddresses.map(
        (host) =>
          new Promise<Server>((resolve, reject) => {
            const listener = createServer(handler);
            listener.once('error', reject).listen(port, host, () => resolve(listener));
          }),
      ),
    );
  };
  const stop = async (): Promise<void> => {
    const running = server;
    server = undefined;
    const listeners = extra;
    extra = [];
    for (const listener of listeners) listener.closeAllConnections();
    await Promise.all(listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve()))));
    if (running) await running.close();
  };
  await start();
  const endpoint = `http://${address}:${port}`;
  return {
    port,
    endpoint,
    uri: (bucket, prefix) => `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&path_style=true`,
    stop,
    start,
    dispose: async () => {
      await stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
