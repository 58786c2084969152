import { Server, ServerCredentials, type ChannelOptions, type ServiceDefinition } from '@grpc/grpc-js';
import { InferenceService, type InferenceServiceContext } from './inference-service.ts';
import { inferResponseSerializer, streamResponseSerializer } from './infer-response-encoder.ts';
import {
  inferenceServiceDefinition,
  type ModelInferResponse,
  type ModelStreamInferResponse,
} from '../../protocol/service-definition.ts';

/** What the service needs (repository, observer, statistics, model control, auth, logger), plus where and how to listen. */
export interface GrpcServerOptions extends InferenceServiceContext {
  port: number;
  host?: string;
  /** Largest accepted request message, in bytes (the HTTP body limit's counterpart). */
  maxMessageBytes?: number;
  /** How long close() waits for in-flight calls before cutting them. */
  shutdownGraceMs?: number;
}

const identity = (message: Buffer): Buffer => message;

/**
 * The grpc-js server options. Channelz is off: nothing here serves its admin service, and its per-call
 * bookkeeping measured ~1.7 µs of a ~43 µs bare unary call (bench/grpc-floor-server.ts, one connection);
 * max_session_memory and max_concurrent_streams changed nothing measurable.
 */
export function grpcServerOptions(maxMessageBytes: number): ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': Math.max(maxMessageBytes, 64 * 1024 * 1024),
    'grpc.enable_channelz': 0,
  };
}

/** The KServe v2 / Triton gRPC endpoint, serving the same repository, pipeline and observer as the HTTP app. */
export class GrpcInferenceServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly graceMs: number,
  ) {}

  static async start(options: GrpcServerOptions): Promise<GrpcInferenceServer> {
    const maxMessageBytes = options.maxMessageBytes ?? 8 * 1024 * 1024;
    const server = new Server(grpcServerOptions(maxMessageBytes));
    const { repository, observer, statistics, control, auth, logger } = options;
    const service = new InferenceService({
      repository,
      observer,
      statistics,
      control,
      logger,
      ...(auth ? { auth } : {}),
    });
    const definition = inferenceServiceDefinition();
    // Requests arrive as bytes (the service decodes them, to answer a malformed one INVALID_ARGUMENT); the
    // inference answers are written by the hand encoder.
    const raw: ServiceDefinition = Object.fromEntries(
      Object.entries(definition).map(([name, method]) => [name, { ...method, requestDeserialize: identity }]),
    );
    raw.ModelInfer!.responseSerialize = inferResponseSerializer(
      definition.ModelInfer!.responseSerialize as (m: ModelInferResponse) => Buffer,
    );
    raw.ModelStreamInfer!.responseSerialize = streamResponseSerializer(
      definition.ModelStreamInfer!.responseSerialize as (m: ModelStreamInferResponse) => Buffer,
    );
    server.addService(raw, service.implementation(definition));
    const host = options.host ?? '127.0.0.1';
    const address = host.includes(':') ? `[${host}]:${options.port}` : `${host}:${options.port}`;
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
    return new GrpcInferenceServer(server, port, options.shutdownGraceMs ?? 10_000);
  }

  /** Stops accepting calls, lets in-flight ones finish (up to the grace period), then closes. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, this.graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
