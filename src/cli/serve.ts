import type { Command } from 'commander';
import { startServing } from '../server/serving.ts';
import { parseIntegerOption } from './options.ts';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve models over HTTP: typed /predict and the Open Inference Protocol v2')
    .argument('[paths...]', 'model folders, or repositories holding one folder per model', ['examples'])
    .option('-p, --port <port>', 'HTTP port', parseIntegerOption('--port'), 8000)
    .option('--grpc-port <port>', 'also serve the Open Inference Protocol over gRPC (KServe v2 / Triton) on this port', parseIntegerOption('--grpc-port'))
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--body-limit <bytes>', 'largest request body accepted (413 beyond)', parseIntegerOption('--body-limit'), 8 * 1024 * 1024)
    .action(async (paths: string[], options: { port: number; grpcPort?: number; host: string; bodyLimit: number }) => {
      const server = await startServing({ paths, port: options.port, grpcPort: options.grpcPort, host: options.host, bodyLimit: options.bodyLimit });
      if (server.repository.list().length === 0) {
        await server.close();
        throw new Error(`no model could be loaded from ${paths.join(', ')}`);
      }
      server.app.log.info(`caliper serving ${server.repository.list().map((m) => m.name).join(', ')} on ${server.url} (docs: ${server.url}/docs${server.grpc ? `, gRPC on port ${server.grpc.port}` : ''})`);
      const shutdown = (signal: string): void => {
        server.app.log.info(`${signal}: finishing in-flight requests, then exiting`);
        server.close().then(() => process.exit(0), (error: Error) => {
          server.app.log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        });
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
}
