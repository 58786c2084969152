import cluster from 'node:cluster';
import { createLogger } from '../observability/logger.ts';
import type { ServeOptions } from '../server/serving.ts';
import { freePort } from '../system/free-port.ts';
import { usableCores } from '../system/usable-cores.ts';
import { ClusterPrimary } from './cluster-primary.ts';
import type { ClusterWorkerSettings } from './cluster-worker.ts';

/**
 * `caliper serve --workers N` (N > 1): in the primary, picks the shared ports (an ephemeral one for a port of 0,
 * so that HTTP and gRPC never share a listening socket), forks the workers and returns once they all stopped
 * (throwing when none could serve); in a worker (forked with the same command line), serves.
 */
export async function serveWithWorkers(
  options: ServeOptions,
  workers: number,
  settings: ClusterWorkerSettings,
): Promise<void> {
  if (cluster.isWorker) {
    // The server's modules load in the workers only: the primary serves nothing, and every module it loads is heap
    // that V8's memory reducer collects again (one full GC of all of it) some seconds after start.
    const { runClusterWorker } = await import('./cluster-worker.ts');
    await runClusterWorker(options, settings);
    return;
  }
  const logger = options.logger ?? createLogger();
  const host = options.host ?? '127.0.0.1';
  // In a cluster every listen(0) with the same address shares one socket: choose the ports here instead.
  const httpPort = options.port === undefined || options.port === 0 ? await freePort(host) : options.port;
  const grpcPort =
    options.grpcPort === undefined ? undefined : options.grpcPort === 0 ? await freePort(host) : options.grpcPort;
  const primary = new ClusterPrimary({
    workers,
    cores: usableCores(),
    httpPort,
    ...(grpcPort !== undefined ? { grpcPort } : {}),
    logger,
    drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
  });
  const code = await primary.run();
  if (primary.failure !== undefined) throw new Error(primary.failure);
  process.exit(code);
}
