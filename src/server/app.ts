import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import type { ModelRepository } from '../lifecycle/model-repository.ts';
import type { RegistryFollower } from '../lifecycle/registry-follower.ts';
import type { Logger } from '../observability/logger.ts';
import { registerAuth, type AuthSettings, type ProtectedRoute } from './auth.ts';
import { registerDocsPage } from './docs-page.ts';
import { errorHandler, sendError } from './error-handler.ts';
import { buildOpenApiDocument, type RegisteredRoute } from './openapi.ts';
import { RequestObserver } from './request-observer.ts';
import { DeferredRequestLogger } from './request-logger.ts';
import { registerRequestBodyRules } from './request-body.ts';
import { registerPredictRoutes } from './routes/predict-routes.ts';
import { registerRepositoryRoutes } from './routes/repository-routes.ts';
import { registerV2Routes } from './routes/v2-routes.ts';
import { registerStatsRoutes, type LatencyObservability } from './routes/stats-routes.ts';
import { CaliperError, invalidInput } from '../errors.ts';
import { BINARY_CONTENT_TYPE } from '../protocol/binary-tensors.ts';
import { SERVER_VERSION } from '../protocol/model-metadata.ts';
import { RepositoryControl } from '../protocol/repository-control.ts';
import { mayHoldUnsafeInteger, parseExactJson } from '../runtime/exact-json.ts';

/** Keys fastify's JSON reader refuses (prototype poisoning); the exact reader is only used once they were checked. */
const POISONING_KEY = /__proto__|constructor/;

const DOCS_LOGO =
  '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="32" viewBox="0 0 160 32"><text x="0" y="24" font-family="sans-serif" font-size="24" font-weight="bold" fill="#ffffff">Caliper</text></svg>';
const DOCS_FAVICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f6feb"/><text x="4" y="12" font-family="sans-serif" font-size="11" font-weight="bold" fill="#fff">C</text></svg>';

export interface ServerOptions {
  repository: ModelRepository;
  logger: Logger;
  /** Largest accepted request body, in bytes. */
  bodyLimit?: number;
  /** Admin token and API keys; without an admin token the /v2/repository routes are not registered (404). */
  auth?: AuthSettings;
  /** Set when the server follows a model registry (promote, traffic, live swaps). */
  follower?: RegistryFollower;
  /** The model folders served, for /v2/repository/models/{name}/load. */
  paths?: readonly string[];
  /** Set on every response, by the onRequest hook that sets x-request-id (a `serve --workers` worker: its slot). */
  responseHeaders?: Readonly<Record<string, string>>;
  /**
   * Called for each route as it is registered: may add route-level hooks (a `serve --workers` worker hooks only the
   * routes it answers for the whole server, so no other request runs a hook for it).
   */
  onRoute?: (route: RouteOptions) => void;
}

export interface CaliperServer {
  app: FastifyInstance;
  observer: RequestObserver;
  /** Metrics, per-model statistics and the SLA monitor fed by every inference request. */
  observability: LatencyObservability;
  /** Every route registered, with the protection it declared (what auth checks, and what the auth tests walk). */
  routes: readonly ProtectedRoute[];
  /** Model control (index, load, unload, promote, traffic): the /v2/repository routes and the gRPC RPCs call it. */
  control: RepositoryControl;
}

export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

/** The HTTP application: /predict routes, the Open Inference Protocol v2, OpenAPI docs. */
export async function buildServer(options: ServerOptions): Promise<CaliperServer> {
  const { repository } = options;
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app: FastifyInstance = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // Per-request log lines cost more than a small model's inference; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Each request's child logger is made only if the request logs (src/server/request-logger.ts).
    childLoggerFactory: (logger, bindings, options) => new DeferredRequestLogger(logger, bindings, options),
    bodyLimit,
    requestIdHeader: 'x-request-id',
    // Requests already received when shutdown starts are answered, not refused (the listener is closed to new connections).
    return503OnClosing: false,
  });
  const observer = new RequestObserver();
  // Inference bodies are JSON (or the binary extension); a text/plain body is a client mistake, answered 415.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new CaliperError('CALIPER_NOT_FOUND', `no route ${request.method} ${request.url} (see GET /docs)`),
    ),
  );

  // Every response names its request id (logged with any error about it), given or generated.
  const responseHeaders = options.responseHeaders;
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    if (responseHeaders !== undefined) reply.headers(responseHeaders);
    // While draining, each answer closes its keep-alive connection so shutdown does not wait for idle clients.
    if (observer.closing) reply.header('connection', 'close');
    done();
  });
  // Before any route: every route from here on declares its protection, checked on the matched route.
  const routes = registerAuth(app, options.auth ?? {});
  // Bodies as Triton's clients send them: no Content-Type on /v2, gzip/deflate, over-limit uploads read before the 413.
  registerRequestBodyRules(app, { bodyLimit });

  // Every route the server answers, for the OpenAPI document (so a route added later is never left undocumented).
  const routeTable: RegisteredRoute[] = [];
  const onRoute = options.onRoute;
  app.addHook('onRoute', (route) => {
    onRoute?.(route);
    routeTable.push({
      method: route.method,
      url: route.url,
      hidden: (route.schema as { hide?: boolean } | undefined)?.hide === true,
    });
  });
  const document = (): Record<string, unknown> => buildOpenApiDocument(repository, SERVER_VERSION, routeTable);
  // Swagger UI at /docs, built on its first request (start-up time).
  registerDocsPage(app, document, {
    title: 'Caliper model server — API',
    logo: Buffer.from(DOCS_LOGO),
    favicon: Buffer.from(DOCS_FAVICON),
  });
  app.get('/openapi.json', { schema: { hide: true }, config: { protection: 'operations' } }, async () => document());

  // Tensors and /predict fields may hold 64-bit integers: a body with an integer literal beyond 2^53 is read with every
  // digit (exact-json.ts), after fastify's own reader has refused prototype poisoning; the rest as fastify reads JSON.
  // A body for a model none of whose versions takes a 64-bit integer is not scanned for one (ModelVersion.takesInt64).
  const defaultJsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    const model = (request.params as { name?: unknown } | undefined)?.name;
    if ((typeof model === 'string' && !repository.takesInt64(model)) || !mayHoldUnsafeInteger(text))
      return defaultJsonParser(request, text, (error, value) => done(error ? poisoningOr(error, text) : null, value));
    if (POISONING_KEY.test(text)) {
      let refused: Error | null = null;
      defaultJsonParser(request, text, (error) => {
        refused = error ? poisoningOr(error, text) : null;
      });
      if (refused) return done(refused, undefined);
    }
    try {
      done(null, parseExactJson(text));
    } catch (error) {
      done(new CaliperError('CALIPER_MALFORMED_BODY', `body: not valid JSON (${(error as Error).message})`), undefined);
    }
  });

  // fastify's reader refuses a "__proto__" (or constructor.prototype) key with the same error as broken JSON: say which.
  const poisoningOr = (error: Error, text: string): Error => {
    try {
      JSON.parse(text);
    } catch {
      return error;
    }
    return invalidInput(
      'body: a "__proto__" or "constructor" key is not accepted (it could reach the prototype of the objects the server builds); rename the field',
    );
  };

  // The Open Inference Protocol's binary tensor extension: the v2 infer route splits JSON header and tensors.
  app.addContentTypeParser(BINARY_CONTENT_TYPE, { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  registerPredictRoutes(app, repository, observer);
  registerV2Routes(app, repository, observer);
  const control = new RepositoryControl({
    repository,
    paths: options.paths ?? [],
    ...(options.follower ? { follower: options.follower } : {}),
  });
  if (options.auth?.adminToken) registerRepositoryRoutes(app, control);
  const observability = registerStatsRoutes(app, repository, observer, options.logger);
  return { app, observer, observability, routes, control };
}
