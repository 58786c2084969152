import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';
import { DOCS_PREFIX } from './auth.ts';

/** The API page's look: Caliper's title, logo and favicon on Swagger UI. */
export interface DocsLook {
  title: string;
  logo: Buffer;
  favicon: Buffer;
}

/** Request headers not passed on to the docs app (hop-by-hop, or set by light-my-request itself). */
const NOT_FORWARDED = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding', 'upgrade']);

/**
 * The Swagger UI of the OpenAPI document at /docs (and /docs/json, /docs/static/…), built on the first request to it
 * rather than at start-up: @fastify/swagger, @fastify/swagger-ui and the listing of its static files cost about 0.2 s
 * of CPU time at start (BENCHMARKS.md, Start-up). The UI is the plugin's own, registered in a fastify instance of its
 * own that these routes forward each request to (light-my-request), so its pages, assets and redirects are the
 * plugin's; a path it does not know is answered by this server's not-found handler. `document` builds the OpenAPI
 * document for each request, as for /openapi.json.
 */
export function registerDocsPage(app: FastifyInstance, document: () => Record<string, unknown>, look: DocsLook): void {
  let ui: Promise<FastifyInstance> | undefined;
  const forward = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    ui ??= buildDocsApp(document, look).catch((error: unknown) => {
      ui = undefined;
      throw error;
    });
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(request.headers))
      if (value !== undefined && !NOT_FORWARDED.has(name)) headers[name] = value;
    const response = await (await ui).inject({ method: request.method as 'GET' | 'HEAD', url: request.url, headers });
    if (response.statusCode === 404) return reply.callNotFound();
    const forwarded: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(response.headers))
      if (value !== undefined && !NOT_FORWARDED.has(name) && name !== 'date') forwarded[name] = value;
    await reply.code(response.statusCode).headers(forwarded).send(response.rawPayload);
  };
  const options = { schema: { hide: true }, config: { protection: 'operations' as const } };
  app.get(DOCS_PREFIX, options, forward);
  app.get(`${DOCS_PREFIX}/*`, options, forward);
  app.addHook('onClose', async () => {
    const built = ui;
    ui = undefined;
    await (await built?.catch(() => undefined))?.close();
  });
}

async function buildDocsApp(document: () => Record<string, unknown>, look: DocsLook): Promise<FastifyInstance> {
  const [{ default: Fastify }, { default: swagger }, { default: swaggerUi }] = await Promise.all([
    import('fastify'),
    import('@fastify/swagger'),
    import('@fastify/swagger-ui'),
  ]);
  const docs = Fastify();
  await docs.register(swagger, { openapi: { info: { title: look.title, version: '' } } }); // replaced by `document`
  await docs.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    transformSpecification: document,
    transformSpecificationClone: false,
    logo: { type: 'image/svg+xml', content: look.logo, href: DOCS_PREFIX, target: '_self' },
    theme: {
      title: look.title,
      favicon: [{ filename: 'favicon.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: look.favicon }],
    },
  });
  await docs.ready();
  return docs;
}
