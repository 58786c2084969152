import type { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { authSettingsFromEnv } from '../server/auth.ts';
import { isModelUri } from '../registry/model-uri.ts';
import { parseIntegerOption } from './options.ts';
import { parseWorkersOption, servesWithWorkers } from '../cluster/workers-option.ts';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve models over HTTP: typed /predict and the Open Inference Protocol v2')
    .argument(
      '[paths...]',
      'model folders, repositories holding one folder per model, or registry URIs (models:/NAME/Production, models:/NAME@ALIAS, models:/NAME/3); default examples',
    )
    .option(
      '--registry <dir|uri>',
      'registry folder or postgres://USER@HOST:PORT/DB (default $CALIPER_REGISTRY, $CALIPER_HOME or ~/.caliper); alone, serves every model with a Production version or an alias',
    )
    .option(
      '--artifacts <dir|uri>',
      'artifact store: a folder or s3://BUCKET/PREFIX[?endpoint=URL&path_style=true] (default $CALIPER_ARTIFACTS, else the registry folder)',
    )
    .option(
      '--artifact-cache <dir>',
      'local cache of the artifacts this server loads from an object store (default $CALIPER_ARTIFACT_CACHE or ~/.caliper/artifact-cache)',
    )
    .option(
      '--admin-token-file <file>',
      'file holding the bearer token for /v2/repository (or set CALIPER_ADMIN_TOKEN); without one the admin API is off',
    )
    .option(
      '--drain-timeout <seconds>',
      'on SIGTERM/SIGINT, how long to wait for requests and gRPC calls in flight before cutting them',
      parseIntegerOption('--drain-timeout'),
      30,
    )
    .option(
      '--protect-operations',
      'put metrics, statistics, SLA, docs and metadata behind the API keys (CALIPER_API_KEYS) too; by default they are open, as health is',
    )
    .option(
      '--workers <n|auto>',
      'worker processes sharing the HTTP and gRPC ports, each with its own batcher, model instances and response cache (auto: the usable cores); default 1, one process',
      parseWorkersOption,
    )
    .option('-p, --port <port>', 'HTTP port', parseIntegerOption('--port'), 8000)
    .option(
      '--grpc-port <port>',
      'also serve the Open Inference Protocol over gRPC (KServe v2 / Triton) on this port',
      parseIntegerOption('--grpc-port'),
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option(
      '--no-strict-readiness',
      'report ready once any model is served, even when others failed to load (default: ready only when every model loaded)',
    )
    .option(
      '--body-limit <bytes>',
      'largest request body accepted (413 beyond)',
      parseIntegerOption('--body-limit'),
      8 * 1024 * 1024,
    )
    .action(
      async (
        args: string[],
        options: {
          port: number;
          grpcPort?: number;
          host: string;
          bodyLimit: number;
          registry?: string;
          artifacts?: string;
          artifactCache?: string;
          adminTokenFile?: string;
          strictReadiness: boolean;
          protectOperations?: boolean;
          drainTimeout: number;
          workers?: number;
        },
      ) => {
        options.registry ??= process.env.CALIPER_REGISTRY || undefined;
        const modelUris = args.filter(isModelUri);
        const paths = args.filter((a) => !isModelUri(a));
        if (args.length === 0 && options.registry === undefined) {
          if (!existsSync('examples') || !statSync('examples').isDirectory()) {
            throw new Error(
              'nothing to serve: give a model folder, a repository of model folders or a models:/ URI (e.g. caliper serve ./models), or --registry DIR (the default ./examples is not here)',
            );
          }
          paths.push('examples');
        }
        const auth = authSettingsFromEnv();
        if (options.adminTokenFile) auth.adminToken = readFileSync(options.adminTokenFile, 'utf8').trim();
        if (options.protectOperations) auth.protectOperations = true;
        const serveOptions = {
          paths,
          modelUris,
          port: options.port,
          grpcPort: options.grpcPort,
          host: options.host,
          bodyLimit: options.bodyLimit,
          auth,
          strictReadiness: options.strictReadiness,
          drainTimeoutMs: options.drainTimeout * 1000,
          ...(options.registry !== undefined ? { registry: options.registry } : {}),
          ...(options.artifacts !== undefined ? { artifacts: options.artifacts } : {}),
          ...(options.artifactCache !== undefined ? { artifactCache: options.artifactCache } : {}),
        };
        const followsWholeRegistry = options.registry !== undefined && modelUris.length === 0;
        if (servesWithWorkers(options.workers)) {
          const { serveWithWorkers } = await import('../cluster/serve-workers.ts');
          await serveWithWorkers(serveOptions, options.workers ?? 1, {
            followsWholeRegistry,
            describe: [...paths, ...modelUris].join(', '),
          });
          return;
        }
        // The server's modules load when it starts, so that `caliper serve --help` stays quick.
        const { startServing } = await import('../server/serving.ts');
        const server = await startServing(serveOptions);
        if (server.repository.list().length === 0 && !followsWholeRegistry) {
          await server.close();
          const reasons = server.follower?.status().map((s) => `${s.target}: ${s.reason ?? s.state}`) ?? [];
          throw new Error(
            `no model could be loaded from ${args.join(', ')}${reasons.length ? ` (${reasons.join('; ')})` : ''}`,
          );
        }
        server.app.log.info(
          `caliper serving ${server.repository
            .list()
            .map((m) => m.name)
            .join(
              ', ',
            )} on ${server.url} (docs: ${server.url}/docs${server.grpc ? `, gRPC on port ${server.grpc.port}` : ''})`,
        );
        const shutdown = (signal: string): void => {
          server.app.log.info(`${signal}: finishing in-flight requests, then exiting`);
          server.close().then(
            () => process.exit(0),
            (error: Error) => {
              server.app.log.error({ err: error }, 'shutdown failed');
              process.exit(1);
            },
          );
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      },
    );
}
