import type {
  ServerDuplexStream,
  ServerErrorResponse,
  ServerUnaryCall,
  ServiceDefinition,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { CaliperError, toCaliperError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { strictRequestDecoders, type RequestDecoder } from '../../protocol/service-definition.ts';
import type { AuthSettings } from '../auth.ts';
import type { AnyCall } from './call-metadata.ts';
import { grpcStatusOf } from './grpc-status.ts';
import { decodeModelInferRequest } from './infer-request-decoder.ts';
import { serveInferStream } from './infer-stream.ts';
import { inferTimed, unaryHandlers, type InferenceHandlerContext } from './inference-handlers.ts';
import { authorizeCall } from './rpc-protection.ts';

/** What the service needs: the handlers' context (repository, observer, statistics, model control), auth, a logger. */
export interface InferenceServiceContext extends InferenceHandlerContext {
  auth?: AuthSettings;
  logger: Logger;
}

/**
 * The KServe v2 / Triton gRPC service as a grpc-js implementation: each call authorized on its RPC
 * (rpc-protection.ts), its request decoded from bytes (so that a malformed protobuf is answered INVALID_ARGUMENT with
 * the reason rather than grpc-js's bare INTERNAL), handled (inference-handlers.ts, infer-stream.ts), and a failure
 * answered with the catalogue's status (grpc-status.ts).
 */
export class InferenceService {
  constructor(private readonly context: InferenceServiceContext) {}

  implementation(definition: ServiceDefinition): UntypedServiceImplementation {
    const { context } = this;
    const handlers = unaryHandlers(context) as Record<string, (request: unknown, call: AnyCall) => Promise<unknown>>;
    const decoders: Record<string, RequestDecoder> = {
      ...strictRequestDecoders(),
      ModelInfer: decodeModelInferRequest,
      ModelStreamInfer: decodeModelInferRequest,
    };
    const implementation: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(definition)) {
      const decode = decoders[name];
      if (!decode) continue;
      if (name === 'ModelStreamInfer') {
        implementation[name] = (call: ServerDuplexStream<Buffer, unknown>) => {
          try {
            authorizeCall(context.auth, name, call);
          } catch (error) {
            call.emit('error', grpcStatusOf(error));
            return;
          }
          serveInferStream(
            call,
            decode,
            async (request, streamCall) => (await inferTimed(context, request, streamCall)).response,
            context.logger,
          );
        };
        continue;
      }
      const handler = handlers[name];
      if (!handler) continue;
      implementation[name] = (
        call: ServerUnaryCall<Buffer, unknown>,
        callback: (error: ServerErrorResponse | null, value?: unknown) => void,
      ) => {
        let request: unknown;
        try {
          authorizeCall(context.auth, name, call);
        } catch (error) {
          callback(grpcStatusOf(error));
          return;
        }
        try {
          request = decode(call.request);
        } catch (error) {
          callback(
            grpcStatusOf(
              new CaliperError(
                'CALIPER_MALFORMED_BODY',
                `malformed ${method.path.split('/').pop()} request protobuf: ${(error as Error).message}`,
              ),
            ),
          );
          return;
        }
        handler(request, call).then(
          (response) => callback(null, response),
          (error: unknown) => {
            const failure = toCaliperError(error);
            if (failure.code === 'CALIPER_INTERNAL' || failure.code === 'CALIPER_INFERENCE_FAILED')
              context.logger.error({ err: error }, failure.message);
            callback(grpcStatusOf(failure));
          },
        );
      };
    }
    return implementation;
  }
}
