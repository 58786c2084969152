import { Agent, request as httpRequest } from 'node:http';
import { credentials as grpcCredentials, Client, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/lifecycle/model-repository.ts';
import { buildServer, type CaliperServer } from '../../src/server/app.ts';
import type { AuthSettings, Protection, ProtectedRoute } from '../../src/server/auth.ts';
import { RPC_PROTECTION } from '../../src/server/grpc/rpc-protection.ts';
import { inferenceServiceDefinition } from '../../src/protocol/service-definition.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

/**
 * Every route the server registers (read from its own route table, so a new route is covered without editing
 * this file), requested in many spellings of its path, with every kind of credential, against servers with
 * different auth settings. The one rule checked: a request reaches a handler only when its credential is
 * enough for the protection that handler's route declares. A spelling the router does not match is a 404.
 */

const ADMIN_TOKEN = 'admin-secret-token';
const API_KEY = 'inference-key-1';

type CredentialKind = 'none' | 'wrong' | 'api-key' | 'admin-token';
const CREDENTIALS: Record<CredentialKind, Record<string, string>> = {
  none: {},
  wrong: { authorization: 'Bearer not-a-token' },
  'api-key': { 'x-api-key': API_KEY },
  'admin-token': { authorization: `Bearer ${ADMIN_TOKEN}` },
};

/** The policy, written out independently of src/server/auth.ts. */
function allowed(settings: AuthSettings, protection: Protection, credential: CredentialKind): boolean {
  const keysSet = (settings.apiKeys ?? []).length > 0;
  switch (protection) {
    case 'open':
      return true;
    case 'operations':
      return !(settings.protectOperations && keysSet) || credential === 'api-key';
    case 'inference':
      return !keysSet || credential === 'api-key';
    case 'admin':
      return settings.adminToken !== undefined && credential === 'admin-token';
  }
}

const CONFIGURATIONS: { name: string; auth: AuthSettings }[] = [
  {
    name: 'admin token, API keys, protected operations',
    auth: { adminToken: ADMIN_TOKEN, apiKeys: [API_KEY, 'inference-key-2'], protectOperations: true },
  },
  { name: 'admin token, API keys, open operations', auth: { adminToken: ADMIN_TOKEN, apiKeys: [API_KEY] } },
  { name: 'no admin token, no API keys', auth: {} },
];

/** A concrete path for a route pattern; no name is a served model, so no handler changes anything. */
function concretePath(url: string): string {
  return url
    .replace(/:version\b/g, '1')
    .replace(/:[A-Za-z_]+/g, 'ghost_model')
    .replace(/\*$/, 'swagger-ui.css');
}

const percentEscape = (char: string, upper: boolean): string => {
  const hex = char.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? hex.toUpperCase() : hex.toLowerCase()}`;
};

/** The ways a client might spell one path to slip past a check made on the raw URL. */
function spellingsOf(path: string): string[] {
  const out = new Set<string>([path]);
  const letters = [...path].map((c, i) => (/[A-Za-z0-9_.-]/.test(c) ? i : -1)).filter((i) => i >= 0);
  // Letters escaped one at a time (the first and last of each segment, upper- and lower-case hex digits), a whole
  // segment at a time (alternating case), and all at once.
  const segments = path
    .split('/')
    .map((segment, n, all) => {
      const start = all.slice(0, n).join('/').length + (n > 0 ? 1 : 0);
      return { start, end: start + segment.length };
    })
    .filter((s) => s.end > s.start);
  const escapeAt = (positions: number[], upper: (i: number) => boolean): string =>
    [...path].map((c, i) => (positions.includes(i) ? percentEscape(c, upper(i)) : c)).join('');
  for (const { start, end } of segments) {
    const inSegment = letters.filter((i) => i >= start && i < end);
    if (inSegment.length === 0) continue;
    out.add(escapeAt([inSegment[0]!], () => true));
    out.add(escapeAt([inSegment.at(-1)!], () => false));
    out.add(escapeAt(inSegment, (i) => i % 2 === 0));
  }
  for (const upper of [true, false]) out.add(escapeAt(letters, () => upper));
  const slashes = [...path].map((c, i) => (c === '/' ? i : -1)).filter((i) => i >= 0);
  for (const i of slashes) {
    out.add(`${path.slice(0, i)}/${path.slice(i)}`); // a doubled slash
    out.add(`${path.slice(0, i)}/.${path.slice(i)}`); // a /./ segment
    out.add(`${path.slice(0, i)}/x/..${path.slice(i)}`); // a /x/../ detour
    if (i > 0) out.add(`${path.slice(0, i)}%2${i % 2 === 0 ? 'F' : 'f'}${path.slice(i + 1)}`); // an escaped slash (not the first: that is no path at all)
  }
  out.add(`${path}/`);
  out.add(`${path}//`);
  out.add(`${path}/.`);
  out.add(`${path};a=b`);
  out.add(`${path};`);
  if (slashes.length > 1) out.add(`${path.slice(0, slashes[1])};x=1${path.slice(slashes[1])}`);
  out.add(`${path}?`);
  out.add(`${path}?x=1`);
  out.add(`${path}?/v2/health/live`);
  out.add(`${path}%3F`);
  out.add(`${path}%3f/v2/health/live`);
  out.add(`${path}#frag`);
  out.add(`${path}%23`);
  out.add(`${path}%00`);
  out.add(`${path}%20`);
  out.add(`${path}\\`);
  out.add(`/v2/health/live?${path}`);
  out.add(`/v2/health/live/..${path}`);
  out.add(`/v2/health/%2e%2e${path}`);
  out.add(path.toUpperCase());
  out.add(`${path}.json`);
  return [...out];
}

interface Answer {
  status: number;
  code?: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

/** One request over the shared keep-alive agent; a reused connection the server had just closed is retried once on a fresh one. */
async function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  try {
    return await sendOnce(port, method, path, headers, agent, body);
  } catch {
    return sendOnce(port, method, path, headers, false, body);
  }
}

function sendOnce(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  via: Agent | false,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: via,
        headers: {
          ...headers,
          ...(body !== undefined
            ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let code: string | undefined;
          try {
            code = (JSON.parse(Buffer.concat(chunks).toString()) as { code?: string }).code;
          } catch {
            code = undefined;
          }
          resolve({ status: res.statusCode ?? 0, ...(code ? { code } : {}) });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `tasks` with at most `width` at a time. */
async function pooled<T>(tasks: (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

interface Reached {
  method: string;
  url: string;
  protection: Protection | undefined;
}

interface Built {
  server: CaliperServer;
  repository: ModelRepository;
  port: number;
  reached: Map<string, Reached>;
}

async function build(auth: AuthSettings): Promise<Built> {
  const repository = new ModelRepository();
  await repository.loadPaths(['examples/fraud-detector']);
  const server = await buildServer({ repository, logger: quietLogger(), auth, paths: ['examples/fraud-detector'] });
  // Anything past onRequest (where auth runs) reaches body parsing and the handler: record which route it matched.
  const reached = new Map<string, Reached>();
  server.app.addHook('preParsing', (request, _reply, payload, done) => {
    if (!request.is404)
      reached.set(request.id, {
        method: request.method,
        url: request.routeOptions.url ?? '',
        protection: request.routeOptions.config.protection,
      });
    done(null, payload);
  });
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address();
  return { server, repository, port: typeof address === 'object' && address ? address.port : 0, reached };
}

describe('authorization is decided on the matched route, in every spelling of every route', () => {
  const built: Built[] = [];
  /** The route table of the fullest configuration (admin routes included): what every configuration is asked. */
  let table: readonly ProtectedRoute[] = [];

  beforeAll(async () => {
    for (const configuration of CONFIGURATIONS) built.push(await build(configuration.auth));
    table = built[0]!.server.routes;
  }, 60_000);

  afterAll(async () => {
    for (const b of built) {
      await b.server.app.close();
      await b.repository.close();
    }
    agent.destroy();
  });

  it('every route declares a protection, and the admin routes exist only with an admin token', () => {
    expect(table.length).toBeGreaterThan(20);
    const declared = (url: string, method = 'POST'): Protection | undefined =>
      table.find((r) => r.url === url && r.method === method)?.protection;
    expect(declared('/v2/repository/models/:name/unload')).toBe('admin');
    expect(declared('/v2/models/:name/infer')).toBe('inference');
    expect(declared('/predict')).toBe('inference');
    expect(declared('/metrics', 'GET')).toBe('operations');
    expect(declared('/docs', 'GET')).toBe('operations');
    expect(declared('/v2/health/ready', 'GET')).toBe('open');
    expect(declared('/v2/health/ready', 'HEAD')).toBe('open');
    expect(built[2]!.server.routes.some((r) => r.protection === 'admin')).toBe(false);
    expect(built[2]!.server.routes.length).toBe(table.filter((r) => r.protection !== 'admin').length);
  });

  it('refuses --protect-operations without API keys to check, and an empty admin token', async () => {
    await expect(
      buildServer({ repository: new ModelRepository(), logger: quietLogger(), auth: { protectOperations: true } }),
    ).rejects.toThrow(/--protect-operations needs API keys/);
    await expect(
      buildServer({ repository: new ModelRepository(), logger: quietLogger(), auth: { adminToken: ' ' } }),
    ).rejects.toThrow(/admin token: empty/);
  });

  it('refuses a route registered without a protection', async () => {
    const repository = new ModelRepository();
    const { app } = await buildServer({ repository, logger: quietLogger() });
    expect(() => app.get('/undeclared', async () => 'reached')).toThrow(/declares no protection/);
    await app.close();
  });

  it('no spelling, method or credential reaches a handler its route does not allow', async () => {
    let id = 0;
    const failures: string[] = [];
    const perRoute = new Map<string, { spellings: number; matched: Set<string> }>();
    let requests = 0;
    for (const [c, configuration] of CONFIGURATIONS.entries()) {
      const { port, reached } = built[c]!;
      const tasks: (() => Promise<void>)[] = [];
      for (const route of table) {
        const intended = `${route.method} ${route.url}`;
        // The strictest configuration and the one without admin routes get every spelling; the other a sample.
        const all = spellingsOf(concretePath(route.url));
        const spellings = c === 1 ? all.filter((_, i) => i % 8 === 0) : all;
        const tally = perRoute.get(intended) ?? { spellings: all.length, matched: new Set<string>() };
        perRoute.set(intended, tally);
        // The route's own method, and the other methods a client could try on the same path.
        const methods = [route.method, ...['GET', 'POST', 'HEAD'].filter((m) => m !== route.method)];
        for (const [s, spelling] of spellings.entries()) {
          for (const method of s === 0 ? methods : [route.method]) {
            // Without admin token or API keys only the admin token can make a difference (it must not: no admin routes).
            const kinds: CredentialKind[] =
              configuration.auth.adminToken || configuration.auth.apiKeys
                ? ['none', 'wrong', 'api-key', 'admin-token']
                : ['none', 'admin-token'];
            for (const credential of kinds) {
              const requestId = `spell-${c}-${++id}`;
              tasks.push(async () => {
                const headers = { ...CREDENTIALS[credential], 'x-request-id': requestId };
                const answer = await send(port, method, spelling, headers, method === 'POST' ? '{}' : undefined).catch(
                  (error: Error) => {
                    failures.push(`${method} ${spelling} (${credential}): ${error.message}`);
                    return { status: 0 } as Answer;
                  },
                );
                requests++;
                const hit = reached.get(requestId);
                const what = `[${configuration.name}] ${method} ${spelling} (${credential}) for ${intended}`;
                if (hit) {
                  if (hit.protection === undefined)
                    failures.push(`${what}: reached ${hit.method} ${hit.url}, which declares no protection`);
                  else if (!allowed(configuration.auth, hit.protection, credential))
                    failures.push(
                      `${what}: reached ${hit.method} ${hit.url} (${hit.protection}) answering ${answer.status}`,
                    );
                  if (hit.url === route.url && hit.method === route.method) tally.matched.add(spelling);
                } else if (![400, 401, 403, 404, 405].includes(answer.status)) {
                  failures.push(`${what}: reached no handler yet answered ${answer.status} ${answer.code ?? ''}`);
                }
                // The canonical spelling is not a vacuous case: refused with the right status, or reached when allowed.
                if (s === 0 && method === route.method) {
                  const exists = configuration.auth.adminToken !== undefined || route.protection !== 'admin';
                  if (!exists) {
                    if (answer.status !== 404)
                      failures.push(
                        `${what}: an admin route without an admin token answered ${answer.status}, expected 404`,
                      );
                  } else if (allowed(configuration.auth, route.protection, credential)) {
                    if (!hit || hit.url !== route.url)
                      failures.push(`${what}: allowed, but the handler was not reached (${answer.status})`);
                  } else {
                    // No credential: 401; a credential of the wrong kind or value: 401 (none of the right kind) or 403.
                    const expected = credential === 'none' ? [401] : [401, 403];
                    if (hit || !expected.includes(answer.status))
                      failures.push(`${what}: answered ${answer.status}, expected ${expected.join(' or ')}`);
                  }
                }
              });
            }
          }
        }
      }
      await pooled(tasks, 16);
    }
    const spellings = [...perRoute.values()].map((t) => t.spellings);
    console.info(
      `route protection: ${perRoute.size} routes, ${Math.min(...spellings)}-${Math.max(...spellings)} spellings per route, ${requests} requests over ${CONFIGURATIONS.length} configurations`,
    );
    expect(failures.slice(0, 40)).toEqual([]);
    expect(requests).toBeGreaterThan(10_000);
    // Percent-escapes of letters are decoded by the router: those spellings do match the route (and were checked).
    for (const [route, tally] of perRoute) expect(tally.matched.size, route).toBeGreaterThan(3);
    const matched = [...perRoute.values()].map((t) => t.matched.size);
    console.info(
      `route protection: ${Math.min(...matched)}-${Math.max(...matched)} spellings per route matched the route itself (and were checked against its protection)`,
    );
  }, 300_000);
});

describe('gRPC: every RPC of the service is checked against its declared protection', () => {
  const servers: { auth: AuthSettings; server: RunningServer; client: Client }[] = [];

  beforeAll(async () => {
    for (const { auth } of CONFIGURATIONS) {
      const server = await startServing({
        paths: ['examples/fraud-detector'],
        port: 0,
        grpcPort: 0,
        logger: quietLogger(),
        auth,
      });
      servers.push({
        auth,
        server,
        client: new Client(`127.0.0.1:${server.grpc!.port}`, grpcCredentials.createInsecure()),
      });
    }
  }, 60_000);

  afterAll(async () => {
    for (const { server, client } of servers) {
      client.close();
      await server.close();
    }
  });

  const identity = (b: Buffer): Buffer => b;

  function unary(client: Client, path: string, metadata: Metadata): Promise<ServiceError | null> {
    return new Promise((resolve) => {
      client.makeUnaryRequest(path, identity, identity, Buffer.alloc(0), metadata, {}, (error) =>
        resolve(error ?? null),
      );
    });
  }

  function streamed(client: Client, path: string, metadata: Metadata): Promise<ServiceError | null> {
    return new Promise((resolve) => {
      const call = client.makeBidiStreamRequest(path, identity, identity, metadata, {});
      call.on('error', (error: ServiceError) => resolve(error));
      call.on('data', () => undefined);
      call.on('end', () => resolve(null));
      call.write(Buffer.alloc(0));
      call.end();
    });
  }

  it('answers UNAUTHENTICATED / PERMISSION_DENIED exactly where the protection says, UNIMPLEMENTED for any other spelling', async () => {
    const definition = inferenceServiceDefinition();
    const failures: string[] = [];
    let calls = 0;
    expect(Object.keys(RPC_PROTECTION).sort()).toEqual(Object.keys(definition).sort());
    for (const { auth, server, client } of servers) {
      for (const [rpc, method] of Object.entries(definition)) {
        const protection = RPC_PROTECTION[rpc as keyof typeof RPC_PROTECTION];
        const [, service, name] = method.path.split('/');
        const paths = [
          method.path,
          `/${service}/${name!.toLowerCase()}`,
          `/${service}/${percentEscape(name![0]!, true)}${name!.slice(1)}`,
          `//${service}/${name}`,
          `${method.path}/`,
          `/${service}/./${name}`,
        ];
        for (const [p, path] of paths.entries()) {
          for (const credential of Object.keys(CREDENTIALS) as CredentialKind[]) {
            const metadata = new Metadata();
            for (const [key, value] of Object.entries(CREDENTIALS[credential])) metadata.set(key, value);
            const error = method.requestStream
              ? await streamed(client, path, metadata)
              : await unary(client, path, metadata);
            calls++;
            const code = error?.code ?? status.OK;
            const what = `[${JSON.stringify(auth)}] ${path} (${credential}) declared ${protection}`;
            if (p > 0) {
              if (code !== status.UNIMPLEMENTED) failures.push(`${what}: answered ${code}, expected UNIMPLEMENTED`);
            } else if (allowed(auth, protection, credential)) {
              if (code === status.UNAUTHENTICATED || code === status.PERMISSION_DENIED)
                failures.push(`${what}: refused (${code}) though allowed`);
            } else if (
              !(
                credential === 'none' && !(protection === 'admin' && !auth.adminToken)
                  ? [status.UNAUTHENTICATED]
                  : [status.UNAUTHENTICATED, status.PERMISSION_DENIED]
              ).includes(code)
            ) {
              failures.push(`${what}: answered ${code} ${error?.details ?? ''}`);
            }
          }
        }
      }
      expect(server.repository.has('fraud_detector')).toBe(true);
    }
    console.info(
      `gRPC protection: ${Object.keys(definition).length} RPCs x 6 spellings x 4 credentials x ${servers.length} configurations = ${calls} calls`,
    );
    expect(failures).toEqual([]);
  }, 120_000);
});
