/**
 * How HTTP request bodies are taken in, so that Triton's and KServe's stock clients work unchanged:
 * - a /v2 body without a Content-Type is JSON, or the binary tensor extension when
 *   Inference-Header-Content-Length is present (Triton's reading); a declared type still has to fit;
 * - `Content-Encoding: gzip` or `deflate` bodies are decoded, the body limit counting decoded bytes
 *   (a small compressed body that inflates past the limit is a 413, and inflating stops there);
 * - a body over the limit is answered 413 once it has been read (up to a bound), so that a client still
 *   writing it reads the answer instead of a broken pipe. Only a client that sent `Expect: 100-continue`
 *   is answered before sending its body: it is never told to continue.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createUnzip } from 'node:zlib';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import { CaliperError } from '../errors.ts';
import { BINARY_CONTENT_TYPE, BINARY_HEADER_LENGTH } from '../protocol/binary-tensors.ts';

/** Content codings a request body may carry (HTTP names; x-gzip is gzip's older alias). */
const DECODED_CODINGS = new Set(['gzip', 'x-gzip', 'deflate']);

export interface RequestBodyRules {
  /** Largest accepted body, in bytes, after decoding. */
  bodyLimit: number;
  /** How many bytes of an over-limit body are read and discarded before answering 413 (default: 4 × bodyLimit, at least 16 MiB). */
  drainBytes?: number;
  /** How long draining may take before the connection is closed instead (ms, default 10 s). */
  drainMs?: number;
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

const expectsContinue = (request: { headers: IncomingMessage['headers'] }): boolean =>
  /100-continue/i.test(String(request.headers.expect ?? ''));

function isTooLarge(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'FST_ERR_CTP_BODY_TOO_LARGE' || code === 'CALIPER_PAYLOAD_TOO_LARGE';
}

/** A decoded body stream: counts the encoded bytes (fastify checks them against Content-Length) and stops past the limit. */
class DecodedBody extends Transform {
  receivedEncodedLength = 0;
  private decoded = 0;

  constructor(
    private readonly limit: number,
    private readonly coding: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.decoded += chunk.byteLength;
    if (this.decoded > this.limit) {
      callback(
        new CaliperError(
          'CALIPER_PAYLOAD_TOO_LARGE',
          `body: decompresses (Content-Encoding: ${this.coding}) to more than the server's limit of ${this.limit} bytes`,
        ),
      );
      return;
    }
    callback(null, chunk);
  }
}

/** Pipes the raw body through an inflater; on any failure the raw body is unpiped (left for draining), never destroyed. */
function decodeBody(raw: Readable, coding: string, limit: number): DecodedBody {
  // createUnzip reads both gzip and zlib-wrapped deflate (what HTTP's "deflate" means), telling them apart by their headers.
  const inflater = createUnzip();
  const decoded = new DecodedBody(limit, coding);
  const stop = (error: Error): void => {
    raw.unpipe(inflater);
    raw.removeListener('data', countEncoded);
    inflater.destroy();
    if (!decoded.destroyed) decoded.destroy(error);
  };
  const countEncoded = (chunk: Buffer): void => {
    decoded.receivedEncodedLength += chunk.byteLength;
  };
  raw.on('data', countEncoded);
  inflater.on('error', (error) =>
    stop(
      new CaliperError(
        'CALIPER_MALFORMED_BODY',
        `body: not valid ${coding} data (Content-Encoding: ${coding}): ${error.message}`,
      ),
    ),
  );
  decoded.on('error', (error) => stop(error));
  raw.pipe(inflater).pipe(decoded);
  return decoded;
}

/** Reads and discards the rest of a request body; true when it ended within the bound and the time allowed. */
function drain(raw: IncomingMessage, maxBytes: number, maxMs: number): Promise<boolean> {
  if (raw.complete || raw.readableEnded) return Promise.resolve(true);
  if (raw.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (ended: boolean): void => {
      clearTimeout(timer);
      raw.removeListener('data', onData);
      raw.removeListener('end', onEnd);
      raw.removeListener('close', onClose);
      resolve(ended);
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.byteLength;
      if (seen > maxBytes) finish(false);
    };
    const onEnd = (): void => finish(true);
    const onClose = (): void => finish(raw.complete);
    const timer = setTimeout(() => finish(false), maxMs);
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('close', onClose);
    raw.resume();
  });
}

export function registerRequestBodyRules(app: FastifyInstance, rules: RequestBodyRules): void {
  const { bodyLimit } = rules;
  const drainBytes = rules.drainBytes ?? Math.max(4 * bodyLimit, 16 * 1024 * 1024);
  const drainMs = rules.drainMs ?? 10_000;

  // The /v2 routes' own onRequest hook (attached to each as it is registered, so other routes run no hook for it).
  const v2ContentType: onRequestHookHandler = function v2ContentType(request, _reply, done) {
    if (request.headers['content-type'] === undefined && hasBody(request)) {
      request.headers['content-type'] =
        request.headers[BINARY_HEADER_LENGTH] !== undefined ? BINARY_CONTENT_TYPE : 'application/json';
    }
    done();
  };
  app.addHook('onRoute', (route) => {
    if (!(route.url ?? route.path).startsWith('/v2/')) return;
    const own = route.onRequest === undefined ? [] : [route.onRequest].flat();
    if (!own.includes(v2ContentType)) route.onRequest = [...own, v2ContentType];
  });

  app.addHook('preParsing', (request, _reply, payload, done) => {
    const header = request.headers['content-encoding'];
    if (header === undefined) {
      done(null, payload);
      return;
    }
    const coding = header.trim().toLowerCase();
    if (coding === '' || coding === 'identity') done(null, payload);
    else if (DECODED_CODINGS.has(coding)) done(null, decodeBody(payload, coding, bodyLimit));
    else
      done(
        new CaliperError(
          'CALIPER_UNSUPPORTED_MEDIA_TYPE',
          `content-encoding: expected gzip, deflate or identity, got "${header}"`,
        ),
        payload,
      );
  });

  // An over-limit body is read (within the bound) before the 413 goes out: a client that writes its whole
  // request before reading (Python's http.client, Triton's HTTP client) then reads the answer.
  app.addHook('onError', async (request, reply, error) => {
    if (!isTooLarge(error) || expectsContinue(request)) return;
    const ended = await drain(request.raw, drainBytes, drainMs);
    if (ended) reply.removeHeader('connection');
    else reply.header('connection', 'close');
  });

  // With Expect: 100-continue, an over-limit Content-Length is refused before the body is sent (no 100 is written).
  app.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (!(Number(request.headers['content-length']) > bodyLimit)) response.writeContinue();
    else response.setHeader('connection', 'close');
    app.server.emit('request', request, response);
  });
}
