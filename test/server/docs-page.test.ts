import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

const examples = join(import.meta.dirname, '../../examples');

interface OpenApi {
  info: { title: string };
  paths: Record<
    string,
    Record<
      string,
      {
        summary: string;
        responses: Record<string, unknown>;
        requestBody?: { content: Record<string, { examples?: Record<string, { value: unknown }> }> };
      }
    >
  >;
}

/** The routes in fastify's printRoutes tree (commonPrefix: false): full paths with their methods. */
function routesOf(tree: string): { path: string; methods: string[] }[] {
  const stack: string[] = [];
  const routes: { path: string; methods: string[] }[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│├└─\s]*)(\S.*?) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) continue;
    const depth = Math.round(match[1]!.length / 4);
    stack.length = depth;
    stack.push(match[2]!);
    routes.push({ path: stack.join(''), methods: match[3]!.split(', ') });
  }
  return routes;
}

describe('/docs and /openapi.json', () => {
  let server: RunningServer;
  let context: BrowserContext;
  const dir = mkdtempSync(join(tmpdir(), 'caliper-docs-'));
  beforeAll(async () => {
    server = await startServing({ paths: [examples], port: 0, logger: quietLogger() });
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await context?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('documents every route the server answers, each model version, operations and repository control', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as OpenApi;
    const paths = Object.keys(doc.paths);
    for (const path of [
      '/models/fraud_detector/predict',
      '/models/fraud_detector/versions/2/predict',
      '/models/fashion_mnist/predict',
      '/models/fraud_detector/sla',
      '/metrics',
      '/v2/models/stats',
      '/v2/models/{model_name}/stats',
      '/v2/repository/index',
      '/v2/repository/models/{model_name}/load',
      '/v2/models/{model_name}/infer',
    ])
      expect(paths).toContain(path);
    // Every registered route (with its parameters named as in the docs) is listed, whoever added it.
    const registered = routesOf(server.app.printRoutes({ commonPrefix: false }));
    expect(registered.length).toBeGreaterThan(20);
    for (const route of registered) {
      if (route.path.startsWith('/docs') || route.path === '/openapi.json') continue;
      const path = route.path.replace(':name', '{model_name}').replace(':version', '{model_version}');
      const perModel = path.startsWith('/models/{model_name}/')
        ? [path.replace('{model_name}', 'fraud_detector').replace('{model_version}', '2')]
        : [path];
      for (const p of perModel) {
        for (const method of route.methods.filter((m) => m !== 'HEAD'))
          expect(doc.paths[p]?.[method.toLowerCase()], `${method} ${p}`).toBeDefined();
      }
    }
    const predict = doc.paths['/models/fraud_detector/predict']!.post!;
    expect(Object.keys(predict.responses)).toEqual(
      expect.arrayContaining(['200', '400', '404', '413', '415', '503', '504']),
    );
    // The example is the model's own sample request, not "0" and "string".
    expect(predict.requestBody!.content['application/json']!.examples!.one!.value).toMatchObject({
      merchant_category: 'electronics',
      transaction_amount: 249.99,
    });
  });

  it('serves the Swagger UI built on the first /docs request: its document is /openapi.json, an unknown page a Caliper 404', async () => {
    const [viaUi, viaRoute] = await Promise.all([
      fetch(`${server.url}/docs/json`).then((r) => r.json()),
      fetch(`${server.url}/openapi.json`).then((r) => r.json()),
    ]);
    expect(viaUi).toEqual(viaRoute);
    const css = await fetch(`${server.url}/docs/static/swagger-ui.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    const missing = await fetch(`${server.url}/docs/nope.html`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: expect.stringContaining('no route GET /docs/nope.html') });
  });

  it("renders in Chromium with Caliper's title and logo, every operation listed, and the model's example in the request body", async () => {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}/docs`, { waitUntil: 'load' });
    await page.waitForSelector('.opblock', { timeout: 30_000 });
    expect(await page.title()).toBe('Caliper model server — API');
    const logo = await page.$eval('.topbar a img', (img) => img.getAttribute('src') ?? '');
    expect(Buffer.from(logo.replace(/^data:image\/svg\+xml;base64,/, ''), 'base64').toString()).toContain(
      '>Caliper</text>',
    );
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as OpenApi;
    const expected = Object.values(doc.paths).reduce((n, methods) => n + Object.keys(methods).length, 0);
    const shown = await page.$$eval('.opblock-summary-path', (nodes) => nodes.map((n) => n.getAttribute('data-path')));
    expect(shown).toHaveLength(expected);
    expect(shown).toContain('/models/fraud_detector/versions/2/predict');
    expect(shown).toContain('/metrics');
    // Open the fraud predict operation: its example body is the sample request.
    await page.click('#operations-fraud_detector-post_models_fraud_detector_predict .opblock-summary');
    const example = await page.waitForSelector(
      '#operations-fraud_detector-post_models_fraud_detector_predict .body-param__example, #operations-fraud_detector-post_models_fraud_detector_predict .microlight',
      { timeout: 10_000 },
    );
    expect(await example.textContent()).toContain('electronics');
    await page.screenshot({ path: join(dir, 'docs.png'), fullPage: false });
    expect(problems).toEqual([]);
    await page.close();
  });
});
