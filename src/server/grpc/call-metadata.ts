import type { ServerDuplexStream, ServerUnaryCall } from '@grpc/grpc-js';
import type { HeaderValues } from '../auth.ts';

/** A unary call or the inference stream, as the handlers see it (requests arrive as bytes). */
export type AnyCall = ServerUnaryCall<Buffer, unknown> | ServerDuplexStream<Buffer, unknown>;

/** The first value of a call's metadata key, as a string; undefined when absent. */
export function metadataValue(call: AnyCall, key: string): string | undefined {
  const value = call.metadata.get(key)[0];
  return value === undefined ? undefined : String(value);
}

/** The call's metadata that stands for HTTP headers in auth (`authorization`, `x-api-key`), as plain headers. */
export function callHeaders(call: AnyCall): HeaderValues {
  return { authorization: metadataValue(call, 'authorization'), 'x-api-key': metadataValue(call, 'x-api-key') };
}
