import { Metadata, type ServerErrorResponse } from '@grpc/grpc-js';
import { boundedMessage, toCaliperError } from '../../errors.ts';

/**
 * A thrown error as a gRPC status, mapped once by the catalogue (src/errors.ts): the catalogue's gRPC code, the
 * message as details, the Caliper code and Retry-After (whole seconds, at least 1) as trailers. Anything that is not
 * a CaliperError is CALIPER_INTERNAL.
 */
export function grpcStatusOf(thrown: unknown): ServerErrorResponse {
  const error = toCaliperError(thrown);
  const metadata = new Metadata();
  metadata.set('caliper-error-code', error.code);
  if (error.retryAfterSeconds !== undefined)
    metadata.set('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  const message = boundedMessage(error.message);
  return Object.assign(new Error(message), { code: error.grpcStatus, details: message, metadata });
}
