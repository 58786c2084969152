import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readModelConfig } from '../../src/config/model-config-file.ts';
import { ModelVersion } from '../../src/lifecycle/model-version.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';

const example = join(import.meta.dirname, '../../examples/fraud-detector');
const transaction = { transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 300 };

/** A copy of the fraud detector's version 1 with its own name and batching/cache settings. */
function modelFolder(root: string, name: string, extra: string): string {
  const dir = join(root, name);
  cpSync(join(example, '1'), join(dir, '1'), { recursive: true });
  const yaml = readFileSync(join(example, 'model.yaml'), 'utf8')
    .replace(/^name: .*$/m, `name: ${name}`)
    .replace(/^(batching|cache|sla):.*$/gm, '');
  writeFileSync(join(dir, 'model.yaml'), `${yaml}\n${extra}\n`);
  return dir;
}

const post = (
  server: RunningServer,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

/** The value of one sample in a Prometheus text exposition, 0 when the series is absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** The version a model's predict route answers with now (each test reads it: an earlier test may have swapped one in). */
async function servedVersion(server: RunningServer, model: string): Promise<string> {
  const response = await post(server, `/models/${model}/predict`, { ...transaction, transaction_amount: 7 });
  return ((await response.json()) as { model_version: string }).model_version;
}

/**
 * Fills slow_queue (max_queue_size 2, 400 ms delay) with two requests, then sends a third. Returns the third's answer,
 * how many of the queued two had settled when it arrived, and the queued two's answers (awaited, so the queue is empty
 * again when this returns).
 */
async function refuseWhenFull(
  server: RunningServer,
): Promise<{ queuedSettledAtRejection: number; rejected: Response; answered: Response[] }> {
  const queued = [
    post(server, '/models/slow_queue/predict', transaction),
    post(server, '/models/slow_queue/predict', { ...transaction, transaction_amount: 1 }),
  ];
  // Both are queued before the third is sent (on a loaded machine they may take longer than any fixed sleep).
  const depth = async (): Promise<number> =>
    (
      (await (await fetch(`${server.url}/v2/models/slow_queue/stats`)).json()) as {
        model_stats: { queue_depth: number }[];
      }
    ).model_stats[0]!.queue_depth;
  for (const deadline = Date.now() + 5000; (await depth()) < 2 && Date.now() < deadline; )
    await new Promise((r) => setTimeout(r, 10));
  // "At once" means before the queue it was refused by has moved: the rejection must arrive while both
  // queued requests are still waiting (a wall-clock bound fails on a loaded machine).
  let settled = 0;
  for (const q of queued)
    void q.then(() => {
      settled += 1;
    });
  const rejected = await post(server, '/models/slow_queue/predict', transaction);
  const queuedSettledAtRejection = settled;
  return { queuedSettledAtRejection, rejected, answered: await Promise.all(queued) };
}

describe('latency management over HTTP', () => {
  let root: string;
  let server: RunningServer;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'caliper-latency-'));
    modelFolder(
      root,
      'cached',
      'batching: { max_batch_size: 64, max_queue_delay_us: 200 }\ncache: { max_entries: 100, ttl_s: 60 }\nsla: { p99_ms: 50 }',
    );
    // A long queue delay keeps requests queued so the queue limit and deadlines can be observed.
    modelFolder(
      root,
      'slow_queue',
      'batching: { max_batch_size: 64, max_queue_delay_us: 400000, max_queue_size: 2, timeout_ms: 5000 }',
    );
    server = await startServing({ paths: [root], port: 0, logger: pino({ level: 'silent' }) });
  });

  afterAll(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Swaps a new version of `cached` in (the same weights) and returns its number: a fresh cache and fresh counts. */
  let latestCached = 1;
  async function swapInCached(): Promise<string> {
    latestCached += 1;
    const config = readModelConfig(join(root, 'cached'));
    await server.repository.swapIn(
      await ModelVersion.load(config, latestCached, join(root, 'cached', '1', 'model.onnx')),
    );
    return String(latestCached);
  }

  it('answers a repeated request from the cache, counts hits and misses, and starts empty for a new version', async () => {
    // A version of its own, so the counts below hold whichever tests ran before this one.
    const version = await swapInCached();
    const first = await post(server, '/models/cached/predict', transaction);
    expect(first.status).toBe(200);
    expect(first.headers.get('server-timing')).toMatch(/cache;dur=.*queue;dur=.*inference;dur=/);
    const firstBody = (await first.json()) as { fraud_probability: number };

    const second = await post(server, '/models/cached/predict', {
      time_since_last_txn: 300,
      merchant_category: 'travel',
      transaction_amount: 120,
    });
    const timing = second.headers.get('server-timing')!;
    expect(timing).toContain('cache;dur=');
    expect(timing).not.toContain('inference');
    expect(((await second.json()) as { fraud_probability: number }).fraud_probability).toBe(
      firstBody.fraud_probability,
    );

    const stats = (await (await fetch(`${server.url}/v2/models/cached/versions/${version}/stats`)).json()) as {
      model_stats: { inference_stats: Record<string, { count: number }> }[];
    };
    expect(stats.model_stats[0]!.inference_stats.cache_hit!.count).toBe(1);
    expect(stats.model_stats[0]!.inference_stats.cache_miss!.count).toBe(1);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(sample(metrics, `caliper_cache_hits_total{model="cached",version="${version}"}`)).toBe(1);
    expect(sample(metrics, `caliper_cache_misses_total{model="cached",version="${version}"}`)).toBe(1);

    const next = await swapInCached();
    const afterSwap = await post(server, '/models/cached/predict', transaction);
    expect(afterSwap.headers.get('server-timing')).toContain('inference;dur=');
    expect(((await afterSwap.json()) as { model_version: string }).model_version).toBe(next);
  });

  it('rejects at once with 503 and Retry-After when the queue is full', async () => {
    const { queuedSettledAtRejection, rejected, answered } = await refuseWhenFull(server);
    expect(queuedSettledAtRejection).toBe(0);
    expect(rejected.status).toBe(503);
    expect(rejected.headers.get('retry-after')).toBe('1');
    expect(await rejected.json()).toMatchObject({ code: 'CALIPER_QUEUE_FULL' });
    expect(answered.map((r) => r.status)).toEqual([200, 200]);
    // The batch leaves when the first queued request has waited the 400 ms delay (which one arrived first is up to the machine).
    const waits = answered.map((r) =>
      Number(/queue;dur=([\d.]+)/.exec(r.headers.get('server-timing') ?? '')?.[1] ?? 0),
    );
    expect(Math.max(...waits)).toBeGreaterThanOrEqual(350);
  });

  it('answers 504 when the deadline (header or v2 parameter) passes while queued, and never lengthens it', async () => {
    const byHeader = await post(server, '/models/slow_queue/predict', transaction, { 'x-caliper-timeout-ms': '50' });
    expect(byHeader.status).toBe(504);
    expect(await byHeader.json()).toMatchObject({ code: 'CALIPER_DEADLINE_EXCEEDED' });

    const v2 = (parameters: Record<string, unknown>) =>
      post(server, '/v2/models/slow_queue/infer', {
        parameters,
        inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 10], data: [4.8, 0.57, 0, 0, 1, 0, 0, 0, 0, 0] }],
      });
    const byParameter = await v2({ timeout: 50_000 }); // microseconds, as Triton
    expect(byParameter.status).toBe(504);
    const bad = await v2({ timeout: 'soon' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain('parameters.timeout');
    // 0 is "no timeout of its own" (Triton's reading; gRPC reads it the same): the model's timeout applies.
    expect((await v2({ timeout: 0 })).status).toBe(200);
    const negative = await v2({ timeout: -5 });
    expect(negative.status).toBe(400);
    expect(((await negative.json()) as { error: string }).error).toBe(
      'parameters.timeout: expected 0 (no timeout) or a positive number of microseconds, got -5',
    );

    const longer = await post(server, '/models/slow_queue/predict', transaction, { 'x-caliper-timeout-ms': '999999' });
    expect(longer.status).toBe(200);
  });

  it('exposes the stages, outcomes, queue depth, in-flight, batch sizes and process metrics in /metrics', async () => {
    // Counts are read as differences, so the test holds whichever tests ran before it (or none).
    const version = await servedVersion(server, 'cached');
    const success = `caliper_requests_total{model="cached",version="${version}",protocol="predict",outcome="success",code=""}`;
    const queueFull =
      'caliper_requests_total{model="slow_queue",version="1",protocol="predict",outcome="error",code="CALIPER_QUEUE_FULL"}';
    const before = await (await fetch(`${server.url}/metrics`)).text();
    const refused = await refuseWhenFull(server);
    expect(refused.rejected.status).toBe(503);
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        post(server, '/models/cached/predict', { ...transaction, transaction_amount: 1000 + i }),
      ),
    );
    const response = await fetch(`${server.url}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    for (const stage of ['validate', 'preprocess', 'cache', 'queue', 'inference', 'postprocess', 'total']) {
      expect(
        sample(text, `caliper_request_duration_seconds_count{model="cached",version="${version}",stage="${stage}"}`),
      ).toBeGreaterThan(0);
    }
    expect(sample(text, success) - sample(before, success)).toBe(8);
    expect(sample(text, queueFull) - sample(before, queueFull)).toBe(1);
    expect(text).toMatch(/caliper_queue_depth\{model="slow_queue",version="1"\} 0/);
    expect(text).toMatch(/caliper_inflight_requests 0/);
    expect(sample(text, `caliper_batch_size_bucket{model="cached",version="${version}",le="+Inf"}`)).toBeGreaterThan(0);
    expect(sample(text, `caliper_batch_size_count{model="cached",version="${version}"}`)).toBeGreaterThan(0);
    expect(text).toMatch(/caliper_process_cpu_seconds_total/);
    expect(text).toMatch(/caliper_sla_p99_seconds\{model="cached"\}/);
  });

  it('reports Triton-style statistics with per-stage times and counts per executed batch size', async () => {
    const body = {
      instances: Array.from({ length: 100 }, (_, i) => ({ ...transaction, transaction_amount: 5000 + i })),
    };
    const version = await servedVersion(server, 'cached');
    const response = await post(server, '/models/cached/predict', body);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { predictions: unknown[] }).predictions).toHaveLength(100);
    const stats = (await (await fetch(`${server.url}/v2/models/cached/versions/${version}/stats`)).json()) as {
      model_stats: {
        name: string;
        version: string;
        execution_count: number;
        batch_stats: { batch_size: number; compute_infer: { count: number } }[];
        stages: Record<string, { count: number; ns: number }>;
        latency_us: { overhead: { p50: number } };
      }[];
    };
    const s = stats.model_stats[0]!;
    expect([s.name, s.version]).toEqual(['cached', version]);
    expect(s.batch_stats.map((b) => b.batch_size)).toEqual(expect.arrayContaining([64, 36]));
    expect(s.execution_count).toBe(s.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0));
    expect(s.stages.inference!.count).toBeGreaterThan(0);
    expect(s.stages.total!.ns).toBeGreaterThan(s.stages.inference!.ns);
    expect(s.latency_us.overhead.p50).toBeGreaterThan(0);
    const all = (await (await fetch(`${server.url}/v2/models/stats`)).json()) as { model_stats: { name: string }[] };
    expect(all.model_stats.map((m) => m.name).sort()).toEqual(['cached', 'slow_queue']);
    expect((await fetch(`${server.url}/v2/models/nope/stats`)).status).toBe(404);
  });

  it('answers the SLA status with rolling percentiles, the budget and the verdict', async () => {
    for (let i = 0; i < 8; i++)
      await post(server, '/models/cached/predict', { ...transaction, transaction_amount: 300 + i });
    const response = await fetch(`${server.url}/models/cached/sla`);
    const sla = (await response.json()) as Record<string, unknown>;
    expect(sla).toMatchObject({ model: 'cached', budget_p99_ms: 50 });
    expect(sla.samples).toBeGreaterThan(5);
    // The verdict follows the measured p99 (which depends on the machine's load), never the other way round.
    expect(sla.met).toBe((sla.p99_ms as number) <= 50);
    expect(sla.p99_ms as number).toBeGreaterThanOrEqual(sla.p50_ms as number);
    expect((await fetch(`${server.url}/models/nope/sla`)).status).toBe(404);
  });

  it('names the request id on every response', async () => {
    const response = await post(server, '/models/cached/predict', transaction, { 'x-request-id': 'abc-123' });
    expect(response.headers.get('x-request-id')).toBe('abc-123');
  });
});
