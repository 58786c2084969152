/**
 * The one catalogue of Caliper errors: each has a stable code, an HTTP status, a gRPC status and a CLI exit code.
 * Routes, gRPC handlers and the CLI map errors through this table and never invent status codes inline; the
 * errors of one area (QuantizeError, DistillError, DatasetError, OnnxFormatError, FeatureStoreError,
 * ProtoDecodeError) are CaliperErrors with that area's codes.
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

/**
 * CLI exit codes (`caliper …` ends with the code's exit status and a one-line reason on stderr). 1 is every failure
 * the caller must fix (input, options, configuration, a missing model); the others follow BSD sysexits so a
 * script can tell "retry later" and "a bug" from it.
 */
export const ExitCode = {
  /** The command failed as asked: bad input, options or configuration, something not found, a guard refused. */
  FAILED: 1,
  /** EX_UNAVAILABLE: a service it depends on (registry database, artifact store, Redis) cannot be reached. */
  UNAVAILABLE: 69,
  /** EX_SOFTWARE: an internal error (a bug, or the model failing at run time). */
  INTERNAL: 70,
  /** EX_TEMPFAIL: busy, not ready or out of time; the same command may succeed later. */
  RETRY: 75,
  /** Interrupted (SIGINT convention, 128 + 2); what was done so far is kept. */
  INTERRUPTED: 130,
} as const;

interface ErrorMapping {
  /** HTTP status of the answer. */
  http: number;
  /** gRPC status code of the answer. */
  grpc: number;
  /** `caliper` exit status. */
  exit: number;
}

const { FAILED, UNAVAILABLE, INTERNAL, RETRY, INTERRUPTED } = ExitCode;

/** Every Caliper error code, grouped by area, with its HTTP status, gRPC status and CLI exit code. */
const catalogue = {
  // Requests: what a client sent.
  CALIPER_INVALID_INPUT: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_MALFORMED_BODY: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_PAYLOAD_TOO_LARGE: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: FAILED },
  CALIPER_UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, exit: FAILED },
  CALIPER_CONFLICT: { http: 409, grpc: GrpcStatus.ALREADY_EXISTS, exit: FAILED },

  // Access: who sent it.
  CALIPER_UNAUTHENTICATED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, exit: FAILED },
  CALIPER_FORBIDDEN: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, exit: FAILED },

  // Models and versions being served.
  CALIPER_MODEL_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, exit: FAILED },
  CALIPER_VERSION_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, exit: FAILED },
  CALIPER_MODEL_NOT_READY: { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: RETRY },
  /** model.yaml or a server setting is invalid; the message names the file and field. */
  CALIPER_CONFIG_INVALID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  /**
   * The model given cannot be served: ONNX Runtime refuses the file, its first run fails, model.yaml disagrees with
   * it. A server-side failure (the request to load was valid; loading it failed), so 500 / INTERNAL, not a 400.
   * Triton's clients raise on any non-200 answer of a repository load and read only its message: none depends on
   * the status. test/registry/unrunnable-model.test.ts and test/server/grpc-repository.test.ts
   * pin it.
   */
  CALIPER_MODEL_LOAD_FAILED: { http: 500, grpc: GrpcStatus.INTERNAL, exit: FAILED },

  // Admission and scheduling: load and time.
  CALIPER_QUEUE_FULL: { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: RETRY },
  CALIPER_RATE_LIMITED: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: RETRY },
  CALIPER_SHUTTING_DOWN: { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: RETRY },
  CALIPER_DEADLINE_EXCEEDED: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, exit: RETRY },
  /** The client left (socket closed, call cancelled) while its request was queued: dropped, not run (499 as nginx logs it). */
  CALIPER_CANCELLED: { http: 499, grpc: GrpcStatus.CANCELLED, exit: INTERRUPTED },

  // Inference: the model's run.
  CALIPER_INFERENCE_FAILED: { http: 500, grpc: GrpcStatus.INTERNAL, exit: INTERNAL },
  /** A batched run answered an output whose first dimension is not the batch's rows: the batch fails rather than mix answers. */
  CALIPER_OUTPUT_NOT_ALIGNED: { http: 500, grpc: GrpcStatus.INTERNAL, exit: INTERNAL },
  CALIPER_INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL, exit: INTERNAL },

  // Online features (FeatureStoreError): the lookup falls back to defaults, so these reach a client only from tools.
  /** model.yaml features with on_missing: error, and no features stored for the request's entity. */
  CALIPER_ENTITY_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, exit: FAILED },
  /** The feature store did not answer within `features.timeout_ms`. */
  CALIPER_FEATURE_STORE_TIMEOUT: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, exit: RETRY },
  /** The feature store failed or cannot be reached. */
  CALIPER_FEATURE_STORE_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: UNAVAILABLE },

  // Registry and artifacts.
  /** The registry's database or artifact store cannot be reached. */
  CALIPER_REGISTRY_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE, exit: UNAVAILABLE },
  CALIPER_ARTIFACT_CORRUPT: { http: 500, grpc: GrpcStatus.DATA_LOSS, exit: FAILED },

  // Wire formats.
  /** A protobuf message that does not decode (ProtoDecodeError): truncated, a bad wire type, a length past the end. */
  CALIPER_PROTO_MALFORMED: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  /** Bytes that are not an ONNX ModelProto with a graph (OnnxFormatError). */
  CALIPER_ONNX_INVALID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  /**
   * Two Parquet files that cannot be joined at the footer, or a footer that does not decode (ParquetJoinError). A
   * batch job scored in halves then writes its output with one COPY instead; it reaches a user only from a tool.
   */
  CALIPER_PARQUET_JOIN_REFUSED: { http: 500, grpc: GrpcStatus.INTERNAL, exit: FAILED },

  // Optimization: data sets, quantization, distillation (QuantizeError, DistillError, DatasetError).
  /** A data set that cannot be read or does not fit the model. */
  CALIPER_DATASET_INVALID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_QUANTIZE_NOT_ONNX: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_QUANTIZE_UNSUPPORTED_MODEL: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_QUANTIZE_ALREADY_QUANTIZED: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, exit: FAILED },
  CALIPER_QUANTIZE_NOTHING_TO_DO: { http: 400, grpc: GrpcStatus.FAILED_PRECONDITION, exit: FAILED },
  CALIPER_QUANTIZE_CALIBRATION_DATA: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_QUANTIZE_EVAL_DATA: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_QUANTIZE_INVALID_OPTIONS: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  /** The quantized model does not run or answers non-finite values; nothing is written. */
  CALIPER_QUANTIZE_BROKEN_OUTPUT: { http: 500, grpc: GrpcStatus.INTERNAL, exit: FAILED },
  /** The result lost more accuracy than --max-drop allows, or is larger or slower than the original; not written. */
  CALIPER_QUANTIZE_GUARD: { http: 422, grpc: GrpcStatus.FAILED_PRECONDITION, exit: FAILED },
  CALIPER_DISTILL_INVALID_OPTIONS: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_DISTILL_STUDENT_SPEC: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_DISTILL_TEACHER: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  CALIPER_DISTILL_DATA: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, exit: FAILED },
  /** The exported student ONNX does not answer what the trained student answers. */
  CALIPER_DISTILL_EXPORT_MISMATCH: { http: 500, grpc: GrpcStatus.INTERNAL, exit: INTERNAL },
} as const satisfies Record<`CALIPER_${string}`, ErrorMapping>;

/** The whole catalogue, for documentation and tests: code → HTTP status, gRPC status, exit code. */
export const ERROR_CATALOGUE: Readonly<Record<CaliperErrorCode, ErrorMapping>> = catalogue;

export type CaliperErrorCode = keyof typeof catalogue;

export class CaliperError extends Error {
  readonly code: CaliperErrorCode;
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** The `caliper` command's exit status when this error ends it. */
  readonly exitCode: number;
  /** Seconds a client should wait before retrying (sent as Retry-After on 429/503). */
  readonly retryAfterSeconds?: number;

  constructor(code: CaliperErrorCode, message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaliperError';
    this.code = code;
    this.httpStatus = catalogue[code].http;
    this.grpcStatus = catalogue[code].grpc;
    this.exitCode = catalogue[code].exit;
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
