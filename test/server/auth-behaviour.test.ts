import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { CaliperError } from '../../src/errors.ts';
import {
  actorOf,
  authorize,
  authSettingsFromEnv,
  checkAuthSettings,
  credentialsOf,
  registerAuth,
  type AuthSettings,
  type Credentials,
  type Protection,
} from '../../src/server/auth.ts';

/**
 * The auth policy as an operator configures it and a client meets it: the environment variables, the credentials
 * accepted for each protection, the status codes and messages, and the WWW-Authenticate challenge. (The walk of every
 * route of the real server in every spelling is route-protection.test.ts.) Each test builds its own app.
 */

const ADMIN = 'admin-token-0123';
const KEY_A = 'key-alpha';
const KEY_B = 'key-beta';

/** The error `authorize` throws, or undefined when the request may pass. */
function refusal(settings: AuthSettings, protection: Protection | undefined, credentials: Credentials) {
  try {
    authorize(settings, protection, credentials);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(CaliperError);
    const e = error as CaliperError;
    return { status: e.httpStatus, code: e.code, message: e.message };
  }
}

/** A fastify app with the auth hook and one route per protection, plus the routes a test adds. */
async function appWith(settings: AuthSettings, extra?: (app: FastifyInstance) => void) {
  const app = Fastify();
  const routes = registerAuth(app, settings);
  app.post('/predict', { config: { protection: 'inference' } }, async () => ({ reached: 'predict' }));
  app.post('/v2/models/:name/infer', { config: { protection: 'inference' } }, async () => ({ reached: 'infer' }));
  app.get('/v2/models/:name', { config: { protection: 'operations' } }, async () => ({ reached: 'metadata' }));
  app.post('/v2/models/:name/trace', { config: { protection: 'operations' } }, async () => ({ reached: 'trace' }));
  app.get('/v2/health/live', { config: { protection: 'open' } }, async () => ({ reached: 'live' }));
  if (settings.adminToken)
    app.post('/v2/repository/index', { config: { protection: 'admin' } }, async () => ({ reached: 'admin' }));
  extra?.(app);
  await app.ready();
  return { app, routes };
}

describe('settings from the environment', () => {
  it('reads the admin token, comma-separated API keys (trimmed, empties dropped) and the operations switch', () => {
    expect(
      authSettingsFromEnv({
        CALIPER_ADMIN_TOKEN: ADMIN,
        CALIPER_API_KEYS: ` ${KEY_A} ,, ${KEY_B},`,
        CALIPER_PROTECT_OPERATIONS: '1',
      }),
    ).toEqual({ adminToken: ADMIN, apiKeys: [KEY_A, KEY_B], protectOperations: true });
    expect(authSettingsFromEnv({ CALIPER_API_KEYS: KEY_A, CALIPER_PROTECT_OPERATIONS: 'true' })).toEqual({
      apiKeys: [KEY_A],
      protectOperations: true,
    });
  });

  it('sets nothing when the variables are absent, empty or only separators', () => {
    expect(authSettingsFromEnv({})).toEqual({});
    expect(
      authSettingsFromEnv({ CALIPER_ADMIN_TOKEN: '', CALIPER_API_KEYS: ' , ,', CALIPER_PROTECT_OPERATIONS: '' }),
    ).toEqual({});
  });

  it('protects operations only for 1 or true', () => {
    for (const value of ['0', 'false', 'yes', 'TRUE ']) {
      expect(
        authSettingsFromEnv({ CALIPER_API_KEYS: KEY_A, CALIPER_PROTECT_OPERATIONS: value }).protectOperations,
      ).toBe(undefined);
    }
  });

  it('reads process.env when given nothing', () => {
    const saved = process.env.CALIPER_API_KEYS;
    process.env.CALIPER_API_KEYS = 'from-process-env';
    try {
      expect(authSettingsFromEnv().apiKeys).toEqual(['from-process-env']);
    } finally {
      if (saved === undefined) delete process.env.CALIPER_API_KEYS;
      else process.env.CALIPER_API_KEYS = saved;
    }
  });
});

describe('settings checks', () => {
  it('refuses protected operations without any API key, naming the setting', () => {
    for (const settings of [{ protectOperations: true }, { protectOperations: true, apiKeys: [] }]) {
      expect(() => checkAuthSettings(settings)).toThrow(
        '--protect-operations needs API keys (CALIPER_API_KEYS) to check',
      );
    }
    expect(() => checkAuthSettings({ protectOperations: true, apiKeys: [KEY_A] })).not.toThrow();
    expect(() => checkAuthSettings({ protectOperations: false })).not.toThrow();
  });

  it('refuses an admin token of only white space, and accepts no token or a real one', () => {
    for (const adminToken of ['', '  ', '\n']) {
      let thrown: unknown;
      try {
        checkAuthSettings({ adminToken });
      } catch (error) {
        thrown = error;
      }
      expect((thrown as CaliperError).code).toBe('CALIPER_CONFIG_INVALID');
      expect((thrown as CaliperError).message).toBe(
        'admin token: empty (the token file or CALIPER_ADMIN_TOKEN holds no characters)',
      );
    }
    expect(() => checkAuthSettings({})).not.toThrow();
    expect(() => checkAuthSettings({ adminToken: ADMIN })).not.toThrow();
  });
});

describe('the policy', () => {
  const full: AuthSettings = { adminToken: ADMIN, apiKeys: [KEY_A, KEY_B], protectOperations: true };

  it('lets everyone reach open routes, whatever they send', () => {
    expect(refusal(full, 'open', {})).toBeUndefined();
    expect(refusal(full, 'open', { authorization: 'Bearer nonsense' })).toBeUndefined();
  });

  it('admin: 403 with a message saying how to turn the admin API on when there is no admin token', () => {
    expect(refusal({}, 'admin', { authorization: `Bearer ${ADMIN}` })).toEqual({
      status: 403,
      code: 'CALIPER_FORBIDDEN',
      message: 'the admin API is off: start the server with an admin token (CALIPER_ADMIN_TOKEN or --admin-token-file)',
    });
  });

  it('admin: 401 without a bearer token, 403 with the wrong one, through with the right one', () => {
    for (const credentials of [{}, { authorization: ADMIN }, { authorization: 'Bearer ' }, { apiKey: ADMIN }]) {
      expect(refusal(full, 'admin', credentials)).toEqual({
        status: 401,
        code: 'CALIPER_UNAUTHENTICATED',
        message: 'authorization: expected "Bearer TOKEN" with the admin token',
      });
    }
    for (const token of [KEY_A, `${ADMIN}x`, ADMIN.slice(0, -1)]) {
      expect(refusal(full, 'admin', { authorization: `Bearer ${token}` })).toEqual({
        status: 403,
        code: 'CALIPER_FORBIDDEN',
        message: 'authorization: the bearer token is not the admin token',
      });
    }
    expect(refusal(full, 'admin', { authorization: `Bearer ${ADMIN}` })).toBeUndefined();
  });

  it('accepts the Bearer scheme in any case and with surrounding white space', () => {
    for (const authorization of [`bearer ${ADMIN}`, `BEARER   ${ADMIN}`, `  Bearer ${ADMIN}  `, `Bearer\t${ADMIN}`]) {
      expect(refusal(full, 'admin', { authorization })).toBeUndefined();
    }
    // Not a bearer credential at all.
    expect(refusal(full, 'admin', { authorization: `Basic ${ADMIN}` })?.status).toBe(401);
    expect(refusal(full, 'admin', { authorization: `XBearer ${ADMIN}` })?.status).toBe(401);
  });

  it('inference: open without API keys, whatever is sent', () => {
    for (const settings of [{}, { apiKeys: [] }, { adminToken: ADMIN }]) {
      expect(refusal(settings, 'inference', {})).toBeUndefined();
      expect(refusal(settings, 'inference', { apiKey: 'wrong' })).toBeUndefined();
    }
  });

  it('inference: any of the API keys, as X-API-Key or as a bearer token', () => {
    for (const credentials of [
      { apiKey: KEY_A },
      { apiKey: KEY_B },
      { authorization: `Bearer ${KEY_A}` },
      { authorization: `Bearer ${KEY_B}` },
      // An empty X-API-Key is no key: the bearer token is used.
      { apiKey: '', authorization: `Bearer ${KEY_B}` },
    ]) {
      expect(refusal(full, 'inference', credentials)).toBeUndefined();
    }
  });

  it('inference: 401 naming both ways to send a key when none is sent, 403 for a wrong key', () => {
    for (const credentials of [{}, { apiKey: '' }, { authorization: KEY_A }]) {
      expect(refusal(full, 'inference', credentials)).toEqual({
        status: 401,
        code: 'CALIPER_UNAUTHENTICATED',
        message: 'authorization: this server needs an API key ("Authorization: Bearer KEY" or "X-API-Key: KEY")',
      });
    }
    for (const credentials of [
      { apiKey: 'key-gamma' },
      { apiKey: `${KEY_A} ` },
      { authorization: `Bearer ${ADMIN}` },
      // The X-API-Key header wins over a valid bearer token.
      { apiKey: 'key-gamma', authorization: `Bearer ${KEY_A}` },
    ]) {
      expect(refusal(full, 'inference', credentials)).toEqual({
        status: 403,
        code: 'CALIPER_FORBIDDEN',
        message: 'authorization: the API key is not valid',
      });
    }
  });

  it('operations: open unless protected, then the API keys apply', () => {
    const open: AuthSettings = { adminToken: ADMIN, apiKeys: [KEY_A] };
    expect(refusal(open, 'operations', {})).toBeUndefined();
    expect(refusal(full, 'operations', {})?.status).toBe(401);
    expect(refusal(full, 'operations', { apiKey: 'nope' })?.status).toBe(403);
    expect(refusal(full, 'operations', { apiKey: KEY_B })).toBeUndefined();
  });

  it('refuses a route that declares no protection, naming why', () => {
    expect(refusal({}, undefined, { apiKey: KEY_A })).toEqual({
      status: 403,
      code: 'CALIPER_FORBIDDEN',
      message: 'this route declares no protection, so it is refused',
    });
  });
});

describe('on a server', () => {
  it('lists each route with its protection, one entry per method, docs routes as operations', async () => {
    const { app, routes } = await appWith({ adminToken: ADMIN }, (a) => {
      a.get('/docs/health', { config: { protection: 'open' } }, async () => 'declared');
      a.route({
        method: ['GET', 'HEAD'],
        url: '/v2/health/ready',
        config: { protection: 'open' },
        handler: async () => 'ok',
      });
      a.get('/docs', async () => 'docs');
      a.get('/docs/json', async () => 'json');
    });
    expect(routes).toEqual([
      { method: 'POST', url: '/predict', protection: 'inference' },
      { method: 'POST', url: '/v2/models/:name/infer', protection: 'inference' },
      { method: 'GET', url: '/v2/models/:name', protection: 'operations' },
      { method: 'HEAD', url: '/v2/models/:name', protection: 'operations' },
      { method: 'POST', url: '/v2/models/:name/trace', protection: 'operations' },
      { method: 'GET', url: '/v2/health/live', protection: 'open' },
      { method: 'HEAD', url: '/v2/health/live', protection: 'open' },
      { method: 'POST', url: '/v2/repository/index', protection: 'admin' },
      // A docs route that declares its own protection keeps it.
      { method: 'GET', url: '/docs/health', protection: 'open' },
      { method: 'HEAD', url: '/docs/health', protection: 'open' },
      { method: 'GET', url: '/v2/health/ready', protection: 'open' },
      { method: 'HEAD', url: '/v2/health/ready', protection: 'open' },
      { method: 'GET', url: '/docs', protection: 'operations' },
      { method: 'HEAD', url: '/docs', protection: 'operations' },
      { method: 'GET', url: '/docs/json', protection: 'operations' },
      { method: 'HEAD', url: '/docs/json', protection: 'operations' },
    ]);
    // The docs routes (registered by a plugin that cannot declare) are served as operations: open here.
    expect((await app.inject({ method: 'GET', url: '/docs' })).body).toBe('docs');
    expect((await app.inject({ method: 'GET', url: '/docs/json' })).body).toBe('json');
    await app.close();
  });

  it('refuses to register an undeclared route, even one that merely starts like the docs', async () => {
    const app = Fastify();
    registerAuth(app, {});
    expect(() => app.get('/docsearch', async () => 'x')).toThrow(
      "route GET /docsearch: declares no protection (config: { protection: 'admin' | 'inference' | 'operations' | 'open' })",
    );
    expect(() => app.get('/undeclared', async () => 'x')).toThrow(/declares no protection/);
    await app.close();
  });

  it('refuses to register an admin route when the admin API is off', async () => {
    const app = Fastify();
    registerAuth(app, { apiKeys: [KEY_A] });
    expect(() => app.post('/v2/repository/index', { config: { protection: 'admin' } }, async () => 'x')).toThrow(
      'route POST /v2/repository/index: an admin route registered while the admin API is off',
    );
    await app.close();
  });

  it('refuses settings that protect nothing before any route is registered', () => {
    expect(() => registerAuth(Fastify(), { protectOperations: true })).toThrow(/--protect-operations needs API keys/);
  });

  it('with API keys: POST /predict needs a key; the challenge comes with 401 only, never with 403', async () => {
    const { app } = await appWith({ apiKeys: [KEY_A] });
    const none = await app.inject({ method: 'POST', url: '/predict', payload: {} });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="caliper"');
    expect(none.json()).toEqual({
      error: 'authorization: this server needs an API key ("Authorization: Bearer KEY" or "X-API-Key: KEY")',
      code: 'CALIPER_UNAUTHENTICATED',
    });
    const wrong = await app.inject({ method: 'POST', url: '/predict', headers: { 'x-api-key': 'nope' }, payload: {} });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.headers['www-authenticate']).toBeUndefined();
    expect(wrong.json().code).toBe('CALIPER_FORBIDDEN');
    const right = await app.inject({ method: 'POST', url: '/predict', headers: { 'x-api-key': KEY_A }, payload: {} });
    expect(right.statusCode).toBe(200);
    expect(right.json()).toEqual({ reached: 'predict' });
    const bearer = await app.inject({
      method: 'POST',
      url: '/v2/models/m/infer',
      headers: { authorization: `Bearer ${KEY_A}` },
      payload: {},
    });
    expect(bearer.json()).toEqual({ reached: 'infer' });
    await app.close();
  });

  it('with API keys: non-inference POSTs and GETs on model paths stay open unless operations are protected', async () => {
    const { app } = await appWith({ apiKeys: [KEY_A] });
    const trace = await app.inject({ method: 'POST', url: '/v2/models/m/trace', payload: {} });
    expect(trace.statusCode).toBe(200);
    expect(trace.json()).toEqual({ reached: 'trace' });
    const metadata = await app.inject({ method: 'GET', url: '/v2/models/m' });
    expect(metadata.json()).toEqual({ reached: 'metadata' });
    // GET on the inference path is not the inference route: no handler, a 404 rather than a 401.
    const getInfer = await app.inject({ method: 'GET', url: '/v2/models/m/infer' });
    expect(getInfer.statusCode).toBe(404);
    expect(getInfer.headers['www-authenticate']).toBeUndefined();
    await app.close();
  });

  it('with protected operations: metadata needs a key too, liveness never does', async () => {
    const { app } = await appWith({ apiKeys: [KEY_A], protectOperations: true });
    expect((await app.inject({ method: 'GET', url: '/v2/models/m' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/v2/models/m', headers: { 'x-api-key': KEY_A } })).statusCode).toBe(
      200,
    );
    expect((await app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200);
    await app.close();
  });

  it('admin routes: 401 with the challenge without a token, 403 without it for a wrong one', async () => {
    const { app } = await appWith({ adminToken: ADMIN, apiKeys: [KEY_A] });
    const none = await app.inject({ method: 'POST', url: '/v2/repository/index', payload: {} });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="caliper"');
    const apiKey = await app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      headers: { authorization: `Bearer ${KEY_A}` },
      payload: {},
    });
    expect(apiKey.statusCode).toBe(403);
    expect(apiKey.headers['www-authenticate']).toBeUndefined();
    const admin = await app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      headers: { authorization: `Bearer ${ADMIN}` },
      payload: {},
    });
    expect(admin.json()).toEqual({ reached: 'admin' });
    await app.close();
  });

  it('gives a route the credential check only where its protection has something to check', async () => {
    // Each route's own onRequest hooks as registered (an onRoute hook added after registerAuth sees what it set).
    const hooksPerRoute = async (settings: AuthSettings) => {
      const seen: Record<string, number> = {};
      const app = Fastify();
      registerAuth(app, settings);
      app.addHook('onRoute', (route) => {
        seen[`${String(route.method)} ${route.url}`] = [route.onRequest ?? []].flat().length;
      });
      app.post('/predict', { config: { protection: 'inference' } }, async () => 'x');
      app.get('/v2/models/:name', { config: { protection: 'operations' } }, async () => 'x');
      app.get('/v2/health/live', { config: { protection: 'open' } }, async () => 'x');
      if (settings.adminToken) app.post('/v2/repository/index', { config: { protection: 'admin' } }, async () => 'x');
      await app.ready();
      await app.close();
      return seen;
    };
    // Nothing to check: an inference request pays for no auth hook at all.
    expect(await hooksPerRoute({})).toEqual({
      'POST /predict': 0,
      'GET /v2/models/:name': 0,
      'HEAD /v2/models/:name': 0,
      'GET /v2/health/live': 0,
      'HEAD /v2/health/live': 0,
    });
    expect(await hooksPerRoute({ apiKeys: [KEY_A], adminToken: ADMIN })).toEqual({
      'POST /predict': 1,
      'GET /v2/models/:name': 0,
      'HEAD /v2/models/:name': 0,
      'GET /v2/health/live': 0,
      'HEAD /v2/health/live': 0,
      'POST /v2/repository/index': 1,
    });
    expect(await hooksPerRoute({ apiKeys: [KEY_A], protectOperations: true })).toMatchObject({
      'GET /v2/models/:name': 1,
      'HEAD /v2/models/:name': 1,
      'GET /v2/health/live': 0,
    });
  });

  it('without API keys: inference is open to anyone', async () => {
    const { app } = await appWith({});
    expect((await app.inject({ method: 'POST', url: '/predict', payload: {} })).json()).toEqual({ reached: 'predict' });
    await app.close();
  });

  it('reads the credential headers, and names the caller by a hash of its bearer token', async () => {
    const seen: { credentials: Credentials; actor: string }[] = [];
    const app = Fastify();
    registerAuth(app, {});
    app.get('/who', { config: { protection: 'open' } }, async (request) => {
      seen.push({ credentials: credentialsOf(request.headers), actor: actorOf(credentialsOf(request.headers)) });
      return 'ok';
    });
    await app.ready();
    await app.inject({ method: 'GET', url: '/who', headers: { authorization: `Bearer ${ADMIN}`, 'x-api-key': KEY_A } });
    await app.inject({ method: 'GET', url: '/who', headers: { authorization: `Bearer ${KEY_A}` } });
    await app.inject({ method: 'GET', url: '/who' });
    await app.inject({ method: 'GET', url: '/who', headers: { authorization: 'Basic abc' } });
    expect(seen[0]!.credentials).toStrictEqual({ authorization: `Bearer ${ADMIN}`, apiKey: KEY_A });
    expect(seen[0]!.actor).toMatch(/^token:[0-9a-f]{12}$/);
    expect(seen[0]!.actor).not.toContain(ADMIN);
    expect(seen[1]!.actor).toMatch(/^token:[0-9a-f]{12}$/);
    expect(seen[1]!.actor).not.toBe(seen[0]!.actor);
    // A header not sent is absent from the credentials, not present as undefined.
    expect(seen[2]!.credentials).toStrictEqual({});
    expect(seen[2]!.actor).toBe('http:anonymous');
    expect(seen[3]!.actor).toBe('http:anonymous');
    await app.close();
  });

  it('refuses a repeated X-API-Key header, even when each copy is a valid key', async () => {
    const { app } = await appWith({ apiKeys: [KEY_A] });
    const repeated = await app.inject({ method: 'POST', url: '/predict', headers: { 'x-api-key': [KEY_A, KEY_A] } });
    expect([401, 403]).toContain(repeated.statusCode);
    await app.close();
  });
});

describe('docs routes behind protected operations', () => {
  it('need an API key like every other operations route', async () => {
    const app = Fastify();
    registerAuth(app, { apiKeys: [KEY_A], protectOperations: true });
    app.get('/docs', async () => 'docs');
    await app.ready();
    expect((await app.inject({ method: 'GET', url: '/docs' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/docs', headers: { 'x-api-key': KEY_A } })).body).toBe('docs');
    await app.close();
  });
});

describe('routes with hooks of their own', () => {
  it("checks credentials before the route's own onRequest hooks, and keeps those hooks", async () => {
    const seen: string[] = [];
    const { app } = await appWith({ protectOperations: true, apiKeys: [KEY_A] }, (a) => {
      a.get(
        '/hooked',
        {
          config: { protection: 'operations' },
          onRequest: [
            (_request, _reply, done) => {
              seen.push('first');
              done();
            },
            (_request, _reply, done) => {
              seen.push('second');
              done();
            },
          ],
        },
        async () => ({ reached: 'hooked' }),
      );
    });
    try {
      const refused = await app.inject({ method: 'GET', url: '/hooked' });
      expect(refused.statusCode).toBe(401);
      expect(seen).toEqual([]);
      const allowed = await app.inject({
        method: 'GET',
        url: '/hooked',
        headers: { 'x-api-key': KEY_A },
      });
      expect(allowed.json()).toEqual({ reached: 'hooked' });
      expect(seen).toEqual(['first', 'second']);
      // The HEAD route fastify copies from GET carries the same hooks and the same check.
      expect((await app.inject({ method: 'HEAD', url: '/hooked' })).statusCode).toBe(401);
      expect(seen).toEqual(['first', 'second']);
    } finally {
      await app.close();
    }
  });
});
