/** A call the server refused or that never completed: the HTTP status or gRPC code, and Caliper's error code when it sent one. */
export class InferenceClientError extends Error {
  readonly httpStatus?: number;
  readonly grpcCode?: number;
  /** CALIPER_… code from the server, when it sent one. */
  readonly code?: string;
  /** Seconds the server asked to wait (Retry-After). */
  readonly retryAfterSeconds?: number;
  /** Whether retrying may succeed: overloaded / unavailable, or the connection failed. */
  readonly retryable: boolean;

  constructor(
    message: string,
    details: {
      httpStatus?: number;
      grpcCode?: number;
      code?: string;
      retryAfterSeconds?: number;
      retryable: boolean;
      cause?: unknown;
    },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'InferenceClientError';
    if (details.httpStatus !== undefined) this.httpStatus = details.httpStatus;
    if (details.grpcCode !== undefined) this.grpcCode = details.grpcCode;
    if (details.code !== undefined) this.code = details.code;
    if (details.retryAfterSeconds !== undefined) this.retryAfterSeconds = details.retryAfterSeconds;
    this.retryable = details.retryable;
  }
}
