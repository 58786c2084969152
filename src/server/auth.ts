import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CaliperError } from '../errors.ts';
import { sendError } from './error-handler.ts';

/** Who may do what: an admin bearer token for model control, optional API keys for inference. */
export interface AuthSettings {
  /** Bearer token for /v2/repository/*; without one the admin API is off. */
  adminToken?: string;
  /** When non-empty, inference requests need one of these (Authorization: Bearer KEY or X-API-Key). */
  apiKeys?: string[];
}

/** CALIPER_ADMIN_TOKEN and CALIPER_API_KEYS (comma-separated). */
export function authSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): AuthSettings {
  const settings: AuthSettings = {};
  if (env.CALIPER_ADMIN_TOKEN) settings.adminToken = env.CALIPER_ADMIN_TOKEN;
  const keys = (env.CALIPER_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  if (keys.length > 0) settings.apiKeys = keys;
  return settings;
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Compares hashes, so the time taken says nothing about how much of a token matched. */
function matches(candidate: string, secret: string): boolean {
  return timingSafeEqual(digest(candidate), digest(secret));
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match ? match[1]!.trim() : undefined;
}

/** A short, non-reversible name for the token behind a request, for the registry's history. */
export function actorOf(request: FastifyRequest): string {
  const token = bearerOf(request);
  return token ? `token:${digest(token).toString('hex').slice(0, 12)}` : 'http:anonymous';
}

export const isAdminPath = (url: string): boolean => url.startsWith('/v2/repository');

function isInferencePath(method: string, url: string): boolean {
  if (method !== 'POST') return false;
  const path = url.split('?')[0]!;
  return path === '/predict' || path.endsWith('/predict') || path.endsWith('/infer') || path.endsWith('/generate');
}

/** 401 when no credential is sent, 403 when it is wrong (or the admin API is off). */
export function checkRequest(settings: AuthSettings, request: FastifyRequest): void {
  if (isAdminPath(request.url)) {
    if (!settings.adminToken) throw new CaliperError('CALIPER_FORBIDDEN', 'the admin API is off: start the server with an admin token (CALIPER_ADMIN_TOKEN or --admin-token-file)');
    const token = bearerOf(request);
    if (token === undefined) throw new CaliperError('CALIPER_UNAUTHENTICATED', 'authorization: expected "Bearer TOKEN" with the admin token');
    if (!matches(token, settings.adminToken)) throw new CaliperError('CALIPER_FORBIDDEN', 'authorization: the bearer token is not the admin token');
    return;
  }
  const keys = settings.apiKeys;
  if (!keys || keys.length === 0 || !isInferencePath(request.method, request.url)) return;
  const header = request.headers['x-api-key'];
  const key = typeof header === 'string' && header !== '' ? header : bearerOf(request);
  if (key === undefined) throw new CaliperError('CALIPER_UNAUTHENTICATED', 'authorization: this server needs an API key ("Authorization: Bearer KEY" or "X-API-Key: KEY")');
  let ok = false;
  for (const candidate of keys) ok = matches(key, candidate) || ok;
  if (!ok) throw new CaliperError('CALIPER_FORBIDDEN', 'authorization: the API key is not valid');
}

export function registerAuth(app: FastifyInstance, settings: AuthSettings): void {
  // A callback hook, not an async one: it runs on every request and a promise per request is measurable.
  app.addHook('onRequest', (request, reply, done) => {
    try {
      checkRequest(settings, request);
    } catch (error) {
      if (error instanceof CaliperError && error.code === 'CALIPER_UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer realm="caliper"');
      sendError(reply, error);
      return;
    }
    done();
  });
}
