import type { AddressInfo } from 'node:net';
import { ModelRepository } from '../lifecycle/model-repository.ts';
import type { SchedulerFactory } from '../lifecycle/model-version.ts';
import type { RegistryFollower } from '../lifecycle/registry-follower.ts';
import { parseModelUri } from '../registry/model-uri.ts';
import type { AuthSettings } from './auth.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import type { StatisticsSource } from '../observability/model-statistics.ts';
import type { CaliperServer, ServerOptions } from './app.ts';
import type { GrpcInferenceServer } from './grpc/grpc-server.ts';
import { ConnectionDrain } from './connection-drain.ts';

// Start-up time: the registry (SQLite, PostgreSQL, S3 clients) and gRPC (grpc-js, protobufjs) are imported below
// only when a registry or a gRPC port is asked for; a plain `caliper serve DIR` never loads them. The HTTP app
// (fastify, ajv, swagger) is imported while the models load, once their loading has started (worker threads spawned).

export interface ServeOptions {
  /** Model folders or repositories of model folders. */
  paths: string[];
  port?: number;
  /** Port of the KServe v2 / Triton gRPC endpoint (0 picks a free one); none when absent. */
  grpcPort?: number;
  host?: string;
  bodyLimit?: number;
  logger?: Logger;
  schedulerFactory?: SchedulerFactory;
  /** models:/ URIs to serve from the registry, followed live as stages and aliases move. */
  modelUris?: string[];
  /** Registry folder or postgres:// URI; given without modelUris, every model with a Production version or an alias is served. */
  registry?: string;
  /** Artifact store: a folder or s3://BUCKET/PREFIX (default: the registry folder's, or $CALIPER_ARTIFACTS). */
  artifacts?: string;
  /** Where artifacts downloaded from an object store are cached (default $CALIPER_ARTIFACT_CACHE or HOME/artifact-cache). */
  artifactCache?: string;
  /** How often the registry is checked for changes (ms, default 250; PostgreSQL also notifies at once). */
  registryPollMs?: number;
  /**
   * Ready (/v2/health/ready, gRPC ServerReady) only when every model asked for loaded (default true, as Triton's
   * --strict-readiness); false: ready once any model is.
   */
  strictReadiness?: boolean;
  /** Admin token (for /v2/repository) and inference API keys. */
  auth?: AuthSettings;
  /** Graceful stop: how long to wait for requests and calls in flight before cutting them (default 30 s). */
  drainTimeoutMs?: number;
  /** Graceful stop: an idle keep-alive connection is closed once quiet this long (default 1 s); see ConnectionDrain. */
  idleGraceMs?: number;
  /**
   * Called once the models are loaded and the routes registered, before the server listens: may add hooks (a
   * `serve --workers` worker adds its cluster routes here). If it throws, nothing listens, the models are freed
   * and startServing rejects with its error.
   */
  prepare?: (server: PreparedServer) => Promise<void> | void;
  /** What gRPC ModelStatistics answers (default: this process's statistics; a `serve --workers` worker: all merged). */
  statistics?: StatisticsSource;
  /** Headers set on every HTTP response (see ServerOptions.responseHeaders). */
  responseHeaders?: ServerOptions['responseHeaders'];
  /** Called for each HTTP route as it is registered (see ServerOptions.onRoute). */
  onRoute?: ServerOptions['onRoute'];
}

/** The server as `prepare` sees it: built, not yet listening. */
export interface PreparedServer extends CaliperServer {
  repository: ModelRepository;
  follower?: RegistryFollower;
}

/** How long a graceful stop may take before the connections and calls still open are cut (default 30 s). */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export interface RunningServer extends CaliperServer {
  repository: ModelRepository;
  url: string;
  port: number;
  /** The gRPC endpoint, when grpcPort was given. */
  grpc?: GrpcInferenceServer;
  /** Set when serving from a registry. */
  follower?: RegistryFollower;
  /** Graceful stop: refuse new work, finish in-flight requests, free the models. */
  close(): Promise<void>;
}

/** Loads and warms every model, then listens. Models that fail to load are logged and left out. */
export async function startServing(options: ServeOptions): Promise<RunningServer> {
  const logger = options.logger ?? createLogger();
  const repository = new ModelRepository(options.schedulerFactory, {
    strictReadiness: options.strictReadiness ?? true,
  });
  const [, { buildServer }] = await Promise.all([repository.loadPaths(options.paths), import('./app.ts')]);
  const uris = options.modelUris ?? [];
  let follower: RegistryFollower | undefined;
  if (uris.length > 0 || options.registry !== undefined) {
    const targets = uris.map(parseModelUri);
    const [{ ModelRegistry }, { RegistryFollower }] = await Promise.all([
      import('../registry/model-registry.ts'),
      import('../lifecycle/registry-follower.ts'),
    ]);
    const registry = await ModelRegistry.connect({
      registry: options.registry,
      artifacts: options.artifacts,
      artifactCache: options.artifactCache,
    });
    follower = new RegistryFollower(registry, repository, {
      targets,
      followAll: targets.length === 0,
      logger,
      pollMs: options.registryPollMs,
      schedulerFactory: options.schedulerFactory,
    });
    await follower.start();
  }
  for (const model of repository.list()) {
    for (const version of model.versions.values()) {
      for (const notice of version.loadNotices) logger.warn({ model: model.name, version: version.version }, notice);
    }
    const { instances } = model.config;
    logger.info(
      {
        model: model.name,
        versions: [...model.versions.keys()],
        instances: { count: instances.count, kind: instances.kind, why: instances.kindReason },
      },
      `model ${model.name} ready (version ${model.defaultVersion}; ${instances.count} ${instances.kind} instance${instances.count > 1 ? 's' : ''}, ${instances.kindReason})`,
    );
  }
  for (const failure of repository.failures)
    logger.error(
      { model: failure.name, source: failure.source },
      `model ${failure.name} failed to load: ${failure.reason}`,
    );
  if (repository.failures.length > 0) {
    logger.warn(
      repository.strictReadiness
        ? `not ready: ${repository.failures.length} model(s) failed to load (${repository.failures.map((f) => f.name).join(', ')}); /v2/health/ready answers 503 until they load (--no-strict-readiness to relax)`
        : `${repository.failures.length} model(s) failed to load (${repository.failures.map((f) => f.name).join(', ')}); ready anyway (--no-strict-readiness)`,
    );
  }
  const server = await buildServer({
    repository,
    logger,
    bodyLimit: options.bodyLimit,
    auth: options.auth,
    paths: options.paths,
    ...(follower ? { follower } : {}),
    ...(options.responseHeaders !== undefined ? { responseHeaders: options.responseHeaders } : {}),
    ...(options.onRoute !== undefined ? { onRoute: options.onRoute } : {}),
  });
  if (follower) {
    const registryFollower = follower;
    // A model followed from the registry that serves nothing (failed load, missing stage or alias) counts as a failed model.
    repository.addFollowedSource(() => {
      const statuses = registryFollower.status();
      return {
        failures: statuses
          .filter((s) => s.state === 'failed' || s.state === 'unavailable')
          .map((s) => ({
            name: s.name,
            source: s.target,
            ...(s.failedVersion !== undefined ? { version: s.failedVersion } : {}),
            reason: s.reason ?? s.state,
          })),
        loading: statuses.filter((s) => s.state === 'loading').length,
      };
    });
    const { registerRolloutMetrics } = await import('../lifecycle/rollout-metrics.ts');
    registerRolloutMetrics(server.observability.metrics.registry, repository, registryFollower);
  }
  const stopFollowing = async (): Promise<void> => {
    await follower?.close();
    await follower?.registry.close();
  };
  try {
    await options.prepare?.({ ...server, repository, ...(follower ? { follower } : {}) });
  } catch (error) {
    await stopFollowing();
    await repository.close();
    throw error;
  }
  // gRPC listens before HTTP: once /v2/health/ready answers, every endpoint the server was asked for takes calls.
  let grpc: GrpcInferenceServer | undefined;
  if (options.grpcPort !== undefined) {
    try {
      const { GrpcInferenceServer } = await import('./grpc/grpc-server.ts');
      grpc = await GrpcInferenceServer.start({
        repository,
        observer: server.observer,
        statistics: options.statistics ?? server.observability.statistics,
        control: server.control,
        logger,
        port: options.grpcPort,
        host: options.host ?? '127.0.0.1',
        maxMessageBytes: options.bodyLimit,
        ...(options.auth ? { auth: options.auth } : {}),
        shutdownGraceMs: options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      });
    } catch (error) {
      await stopFollowing();
      await repository.close();
      throw error;
    }
  }
  try {
    await server.app.listen({ port: options.port ?? 8000, host: options.host ?? '127.0.0.1' });
  } catch (error) {
    await grpc?.close();
    await stopFollowing();
    await repository.close();
    throw error;
  }
  const drain = new ConnectionDrain(server.app.server, { idleGraceMs: options.idleGraceMs });
  const address = server.app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    ...server,
    repository,
    port: address.port,
    url: `http://${host}:${address.port}`,
    ...(grpc ? { grpc } : {}),
    ...(follower ? { follower } : {}),
    close: () => {
      closing ??= (async () => {
        // Readiness answers 503 from now on and every answer closes its connection (Connection: close).
        server.observer.closing = true;
        // The listener stops accepting; requests already received are answered; quiet keep-alive connections are
        // closed with a FIN (never reset); gRPC sends GOAWAY and finishes the calls in flight. All within the timeout.
        drain.begin();
        const timeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<'expired'>((resolve) => {
          timer = setTimeout(() => resolve('expired'), timeoutMs);
        });
        const finished = Promise.all([server.app.close(), grpc?.close()]);
        try {
          if ((await Promise.race([finished, expired])) === 'expired') {
            const { open, busy } = drain.counts;
            logger.warn(
              { open_connections: open, busy_connections: busy },
              `drain timeout (${timeoutMs} ms): cutting ${open} connection(s) still open`,
            );
            drain.forceClose();
            await finished;
          }
        } finally {
          clearTimeout(timer);
          drain.end();
        }
        await stopFollowing();
        await repository.close();
      })();
      return closing;
    },
  };
}
