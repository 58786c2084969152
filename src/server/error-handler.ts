import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { boundedMessage, CaliperError, toCaliperError } from '../errors.ts';

/** Maps fastify's own request errors (body parsing, limits) onto the catalogue. */
function fromFastifyError(error: FastifyError): CaliperError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new CaliperError('CALIPER_PAYLOAD_TOO_LARGE', `body: larger than the server's limit (${error.message})`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new CaliperError(
        'CALIPER_UNSUPPORTED_MEDIA_TYPE',
        `content-type: expected application/json (${error.message})`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new CaliperError('CALIPER_MALFORMED_BODY', 'body: empty, expected a JSON document');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new CaliperError('CALIPER_MALFORMED_BODY', `body: malformed JSON (${error.message})`);
    default:
      break;
  }
  if (error instanceof SyntaxError || error.statusCode === 400)
    return new CaliperError('CALIPER_MALFORMED_BODY', `body: malformed JSON (${error.message})`);
  if (error.statusCode === 404) return new CaliperError('CALIPER_NOT_FOUND', error.message);
  return undefined;
}

/** Replies {"error": "...", "code": "CALIPER_..."} with the catalogue's status (and Retry-After where it applies). */
export function sendError(reply: FastifyReply, thrown: unknown): FastifyReply {
  const error =
    thrown instanceof CaliperError ? thrown : (fromFastifyError(thrown as FastifyError) ?? toCaliperError(thrown));
  if (error.retryAfterSeconds !== undefined)
    reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  if (error.httpStatus >= 500 && error.code !== 'CALIPER_QUEUE_FULL' && error.code !== 'CALIPER_DEADLINE_EXCEEDED') {
    reply.log.error({ err: thrown }, error.message);
  }
  return reply
    .code(error.httpStatus)
    .type('application/json')
    .send(JSON.stringify({ error: boundedMessage(error.message), code: error.code }));
}

export function errorHandler(
  this: unknown,
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  return sendError(reply, error);
}
