import type { FastifyRequest } from 'fastify';
import type { AdmissionHints } from '../pipeline/admission.ts';

/**
 * What an HTTP request asked for, for `admit` (src/pipeline/admission.ts): `x-caliper-timeout-ms` (or the shorter
 * `x-timeout-ms`) and `x-caliper-priority` as sent, and whether its connection has closed.
 */
export function httpAdmissionHints(request: FastifyRequest): AdmissionHints {
  const timeout = request.headers['x-caliper-timeout-ms'] ?? request.headers['x-timeout-ms'];
  const priority = request.headers['x-caliper-priority'];
  // A closed connection cannot take the answer: queued work for it is dropped (the socket is read only then).
  const socket = request.raw.socket;
  // Plain stores, not conditional spreads: this runs on every request. The closure is assigned, not declared in the
  // literal, so no function name is given to it per request (tsx's keepNames wraps a named one in a defineProperty).
  const hints: AdmissionHints = {};
  hints.clientGone = () => socket.destroyed;
  if (typeof timeout === 'string') hints.timeoutMs = timeout;
  if (typeof priority === 'string') hints.priority = priority;
  return hints;
}
