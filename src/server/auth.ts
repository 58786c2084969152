import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { CaliperError } from '../errors.ts';
import { sendError } from './error-handler.ts';

/**
 * What a route needs before its handler runs, declared on the route itself (`config: { protection }`) and
 * decided on the route the router matched, never on how the client spelled the path:
 * - `admin`: the admin bearer token (model control; these routes exist only when an admin token is set);
 * - `inference`: one of the API keys, when API keys are set;
 * - `operations`: metrics, statistics, SLA, docs and metadata: open, or behind the API keys with `protectOperations`;
 * - `open`: liveness and readiness probes, always open.
 */
export type Protection = 'admin' | 'inference' | 'operations' | 'open';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may reach this route's handler (see Protection); every route declares one. */
    protection?: Protection;
  }
}

/** Who may do what: an admin bearer token for model control, optional API keys for inference. */
export interface AuthSettings {
  /** Bearer token for /v2/repository/*; without one the admin API is not served at all. */
  adminToken?: string;
  /** When non-empty, inference requests need one of these (Authorization: Bearer KEY or X-API-Key). */
  apiKeys?: string[];
  /** Puts the operations routes (metrics, statistics, SLA, docs, metadata) behind the API keys too. */
  protectOperations?: boolean;
}

/** The credentials a request carries, whatever its protocol (HTTP headers or gRPC metadata). */
export interface Credentials {
  /** The `authorization` header / metadata value. */
  authorization?: string;
  /** The `x-api-key` header / metadata value. */
  apiKey?: string;
}

/** A route as the server registered it, with its declared protection (the table the auth tests walk). */
export interface ProtectedRoute {
  method: string;
  url: string;
  protection: Protection;
}

/** The swagger UI plugin's routes (/docs, /docs/json, /docs/static/*): operations, declared here as the plugin cannot. */
export const DOCS_PREFIX = '/docs';

/** CALIPER_ADMIN_TOKEN, CALIPER_API_KEYS (comma-separated) and CALIPER_PROTECT_OPERATIONS=1. */
export function authSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): AuthSettings {
  const settings: AuthSettings = {};
  if (env.CALIPER_ADMIN_TOKEN) settings.adminToken = env.CALIPER_ADMIN_TOKEN;
  const keys = (env.CALIPER_API_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (keys.length > 0) settings.apiKeys = keys;
  if (env.CALIPER_PROTECT_OPERATIONS === '1' || env.CALIPER_PROTECT_OPERATIONS === 'true')
    settings.protectOperations = true;
  return settings;
}

/** Refuses settings that would silently protect nothing (operations "protected" with no API key to check). */
export function checkAuthSettings(settings: AuthSettings): void {
  if (settings.protectOperations && !(settings.apiKeys && settings.apiKeys.length > 0)) {
    throw new CaliperError('CALIPER_CONFIG_INVALID', '--protect-operations needs API keys (CALIPER_API_KEYS) to check');
  }
  if (settings.adminToken !== undefined && settings.adminToken.trim() === '') {
    throw new CaliperError(
      'CALIPER_CONFIG_INVALID',
      'admin token: empty (the token file or CALIPER_ADMIN_TOKEN holds no characters)',
    );
  }
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Compares hashes, so the time taken says nothing about how much of a token matched. */
function matches(candidate: string, secret: string): boolean {
  return timingSafeEqual(digest(candidate), digest(secret));
}

function bearerIn(header: string | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match ? match[1]!.trim() : undefined;
}

/** Request headers (HTTP) or call metadata (gRPC) as plain name → value pairs, names in lower case. */
export type HeaderValues = Readonly<Record<string, string | string[] | undefined>>;

/** The credentials in a request's headers or a call's metadata (a repeated header counts as absent). */
export function credentialsOf(headers: HeaderValues): Credentials {
  const { authorization } = headers;
  const apiKey = headers['x-api-key'];
  return {
    ...(typeof authorization === 'string' ? { authorization } : {}),
    ...(typeof apiKey === 'string' ? { apiKey } : {}),
  };
}

/** A short, non-reversible name for the token behind a request, for the registry's history. */
export function actorOf(credentials: Credentials): string {
  const token = bearerIn(credentials.authorization);
  return token ? `token:${digest(token).toString('hex').slice(0, 12)}` : 'http:anonymous';
}

/**
 * Throws unless `credentials` may reach something declared `protection`: 401 when no credential is sent,
 * 403 when it is wrong. A route with no declared protection is refused (fail closed).
 */
export function authorize(settings: AuthSettings, protection: Protection | undefined, credentials: Credentials): void {
  switch (protection) {
    case 'open':
      return;
    case 'admin': {
      if (!settings.adminToken)
        throw new CaliperError(
          'CALIPER_FORBIDDEN',
          'the admin API is off: start the server with an admin token (CALIPER_ADMIN_TOKEN or --admin-token-file)',
        );
      const token = bearerIn(credentials.authorization);
      if (token === undefined)
        throw new CaliperError(
          'CALIPER_UNAUTHENTICATED',
          'authorization: expected "Bearer TOKEN" with the admin token',
        );
      if (!matches(token, settings.adminToken))
        throw new CaliperError('CALIPER_FORBIDDEN', 'authorization: the bearer token is not the admin token');
      return;
    }
    case 'operations':
      if (!settings.protectOperations) return;
      checkApiKey(settings.apiKeys, credentials);
      return;
    case 'inference':
      checkApiKey(settings.apiKeys, credentials);
      return;
    default:
      throw new CaliperError('CALIPER_FORBIDDEN', 'this route declares no protection, so it is refused');
  }
}

function checkApiKey(keys: string[] | undefined, credentials: Credentials): void {
  if (!keys || keys.length === 0) return;
  const key =
    credentials.apiKey !== undefined && credentials.apiKey !== ''
      ? credentials.apiKey
      : bearerIn(credentials.authorization);
  if (key === undefined)
    throw new CaliperError(
      'CALIPER_UNAUTHENTICATED',
      'authorization: this server needs an API key ("Authorization: Bearer KEY" or "X-API-Key: KEY")',
    );
  let ok = false;
  for (const candidate of keys) ok = matches(key, candidate) || ok;
  if (!ok) throw new CaliperError('CALIPER_FORBIDDEN', 'authorization: the API key is not valid');
}

/**
 * Whether a route of `protection` has anything to check under `settings`: inference only with API keys, operations only
 * when protected, admin always; open never. (A route that declares none is refused at registration.)
 */
export function needsCheck(settings: AuthSettings, protection: Protection): boolean {
  switch (protection) {
    case 'open':
      return false;
    case 'inference':
      return (settings.apiKeys?.length ?? 0) > 0;
    case 'operations':
      return settings.protectOperations === true;
    default:
      return true;
  }
}

/**
 * Wires the policy into the app: every route added from now on must declare its protection (registration
 * fails otherwise) and is listed in the returned table; a route whose protection has something to check under these
 * settings gets the check as its own onRequest hook, decided on the route the router matched. A route with nothing to
 * check gets no hook, so an unprotected inference request pays nothing for auth. Call before any route or plugin is
 * registered.
 */
export function registerAuth(app: FastifyInstance, settings: AuthSettings): ProtectedRoute[] {
  checkAuthSettings(settings);
  const routes: ProtectedRoute[] = [];
  // A callback hook, not an async one: a promise per request is measurable.
  const check: onRequestHookHandler = function checkCredentials(request, reply, done) {
    try {
      authorize(settings, request.routeOptions.config.protection, credentialsOf(request.headers));
    } catch (error) {
      if (error instanceof CaliperError && error.code === 'CALIPER_UNAUTHENTICATED')
        reply.header('www-authenticate', 'Bearer realm="caliper"');
      sendError(reply, error);
      return;
    }
    done();
  };
  app.addHook('onRoute', (route) => {
    const url = route.url ?? route.path;
    let protection = route.config?.protection;
    if (protection === undefined && (url === DOCS_PREFIX || url.startsWith(`${DOCS_PREFIX}/`))) {
      protection = 'operations';
      route.config = { ...route.config, protection };
    }
    if (protection === undefined)
      throw new Error(
        `route ${String(route.method)} ${url}: declares no protection (config: { protection: 'admin' | 'inference' | 'operations' | 'open' })`,
      );
    if (protection === 'admin' && !settings.adminToken)
      throw new Error(`route ${String(route.method)} ${url}: an admin route registered while the admin API is off`);
    for (const method of [route.method].flat()) routes.push({ method: String(method), url, protection });
    if (needsCheck(settings, protection)) {
      // First among the route's own hooks (a HEAD route copied from its GET route already carries it).
      const own = route.onRequest === undefined ? [] : [route.onRequest].flat();
      if (!own.includes(check)) route.onRequest = [check, ...own];
    }
  });
  return routes;
}
