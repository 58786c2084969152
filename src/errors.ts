/**
 * The one catalogue of Caliper errors: each has a stable code, an HTTP status and a gRPC status.
 * Routes map errors through this table and never invent status codes inline.
 */

/** gRPC status codes used by the catalogue (numeric values from the gRPC specification). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const catalogue = {
  CALIPER_INVALID_INPUT: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  CALIPER_MALFORMED_BODY: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  CALIPER_UNAUTHENTICATED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED },
  CALIPER_FORBIDDEN: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED },
  CALIPER_MODEL_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND },
  CALIPER_VERSION_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND },
  CALIPER_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND },
  /** model.yaml features with on_missing: error, and no features stored for the request's entity. */
  CALIPER_ENTITY_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND },
  CALIPER_CONFLICT: { http: 409, grpc: GrpcStatus.ALREADY_EXISTS },
  CALIPER_PAYLOAD_TOO_LARGE: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  CALIPER_UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT },
  CALIPER_QUEUE_FULL: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  CALIPER_RATE_LIMITED: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  CALIPER_MODEL_NOT_READY: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  CALIPER_SHUTTING_DOWN: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  CALIPER_DEADLINE_EXCEEDED: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED },
  /** The client left (socket closed, call cancelled) while its request was queued: dropped, not run (499 as nginx logs it). */
  CALIPER_CANCELLED: { http: 499, grpc: GrpcStatus.CANCELLED },
  CALIPER_INFERENCE_FAILED: { http: 500, grpc: GrpcStatus.INTERNAL },
  /** A batched run answered an output whose first dimension is not the batch's rows: the batch fails rather than mix answers. */
  CALIPER_OUTPUT_NOT_ALIGNED: { http: 500, grpc: GrpcStatus.INTERNAL },
  CALIPER_INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL },
  CALIPER_CONFIG_INVALID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  CALIPER_MODEL_LOAD_FAILED: { http: 400, grpc: GrpcStatus.FAILED_PRECONDITION },
  CALIPER_ARTIFACT_CORRUPT: { http: 500, grpc: GrpcStatus.DATA_LOSS },
  /** The registry's database or artifact store cannot be reached. */
  CALIPER_REGISTRY_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE },
} as const satisfies Record<string, { http: number; grpc: number }>;

export type CaliperErrorCode = keyof typeof catalogue;

export class CaliperError extends Error {
  readonly code: CaliperErrorCode;
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** Seconds a client should wait before retrying (sent as Retry-After on 429/503). */
  readonly retryAfterSeconds?: number;

  constructor(code: CaliperErrorCode, message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaliperError';
    this.code = code;
    this.httpStatus = catalogue[code].http;
    this.grpcStatus = catalogue[code].grpc;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const invalidInput = (message: string): CaliperError => new CaliperError('CALIPER_INVALID_INPUT', message);

/** Wraps anything thrown into a CaliperError; unknown errors become CALIPER_INTERNAL with their message. */
export function toCaliperError(error: unknown): CaliperError {
  if (error instanceof CaliperError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new CaliperError('CALIPER_INTERNAL', message, { cause: error });
}

/** The most characters of one client-supplied string an error message quotes back. */
export const ECHO_LIMIT = 100;
/** The most characters of an error message sent to a client. */
export const MESSAGE_LIMIT = 1000;

/** `text` cut to `limit` characters with "…" appended when longer (never splitting a surrogate pair). */
export function clip(text: string, limit: number = ECHO_LIMIT): string {
  if (text.length <= limit) return text;
  const end = /[\uD800-\uDBFF]/.test(text[limit - 1]!) ? limit - 1 : limit;
  return `${text.slice(0, end)}…`;
}

/**
 * An error message as a client receives it (HTTP body, gRPC details, stream error_message): every quoted string
 * and every unbroken run of characters longer than ECHO_LIMIT is clipped, and the whole to MESSAGE_LIMIT. Applied
 * once, where errors leave the server, so no route has to remember to bound what it echoes.
 */
export function boundedMessage(message: string): string {
  if (message.length <= ECHO_LIMIT) return message;
  // A plain scan, not a regular expression: a backtracking match over a multi-megabyte echo overflows the stack.
  const separator = (c: string): boolean =>
    c === '"' || c === ':' || c === ',' || c === ' ' || c === '\n' || c === '\t';
  let out = '';
  let i = 0;
  while (i < message.length && out.length <= MESSAGE_LIMIT) {
    const c = message[i]!;
    if (c === '"') {
      const close = message.indexOf('"', i + 1);
      if (close > i + 1 + ECHO_LIMIT) {
        out += `"${clip(message.slice(i + 1, close))}"`;
        i = close + 1;
        continue;
      }
    }
    if (separator(c)) {
      out += c;
      i++;
      continue;
    }
    let end = i;
    while (end < message.length && !separator(message[end]!)) end++;
    out += clip(message.slice(i, end));
    i = end;
  }
  return clip(out, MESSAGE_LIMIT);
}
