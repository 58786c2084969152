import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBench } from '../../src/bench/bench-runner.ts';
import { HttpLoadTarget, inferencePath } from '../../src/bench/load-target.ts';
import { readSampleRequests, toV2Requests } from '../../src/bench/request-data.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';

const FRAUD = 'examples/fraud-detector';

describe('caliper bench against a real server', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServing({ paths: [FRAUD], port: 0, logger: createLogger('silent') });
  });
  afterAll(async () => server?.close());

  const bench = (
    protocol: 'predict' | 'v2',
    levels: number[],
    stability: { tolerancePct: number; maxTrials: number },
  ) => {
    const samples = readSampleRequests(FRAUD);
    const data = protocol === 'v2' ? toV2Requests(samples, FRAUD) : samples;
    return runBench({
      target: new HttpLoadTarget(server.url, inferencePath(protocol, 'fraud_detector'), data),
      url: server.url,
      model: 'fraud_detector',
      protocol,
      data: { source: data.source, requests: data.documents.length },
      plan: { mode: 'concurrency', levels },
      windowMs: 250,
      warmupMs: 100,
      stability,
    });
  };

  it('reports throughput, percentiles, errors and the per-stage breakdown for each concurrency level', async () => {
    const report = await bench('predict', [1, 4], { tolerancePct: 1000, maxTrials: 3 });
    expect(report.kind).toBe('caliper-bench');
    expect(report.mode).toBe('concurrency');
    expect(report.target.request).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/models\/fraud_detector\/predict/);
    expect(report.steps.map((s) => s.load)).toEqual([1, 4]);
    for (const step of report.steps) {
      expect(step.throughput).toBeGreaterThan(10);
      expect(step.errors).toEqual({ total: 0, byStatus: {} });
      const l = step.latencyMs;
      expect(l.p50).toBeGreaterThan(0);
      expect(l.p50).toBeLessThanOrEqual(l.p90);
      expect(l.p90).toBeLessThanOrEqual(l.p95);
      expect(l.p95).toBeLessThanOrEqual(l.p99);
      expect(l.p99).toBeLessThanOrEqual(l.max);
      expect(Object.keys(step.serverTiming)).toEqual(expect.arrayContaining(['validate', 'total']));
      expect(step.serverTiming.total).toBeLessThanOrEqual(l.mean + 0.001);
      // Each stage mean with its 95% interval from the answers' spread, around the mean.
      expect(Object.keys(step.serverTimingInterval!).sort()).toEqual(Object.keys(step.serverTiming).sort());
      for (const [stage, mean] of Object.entries(step.serverTiming)) {
        const { low, high } = step.serverTimingInterval![stage]!;
        expect(low).toBeLessThanOrEqual(mean);
        expect(high).toBeGreaterThanOrEqual(mean);
      }
      // The rule is met at the third window with a loose tolerance.
      expect(step.stable).toBe(true);
      expect(step.windows).toHaveLength(3);
      expect(step.requests).toBeGreaterThan(0);
    }
  });

  it('stops at the maximum number of windows and says the step is not stable', async () => {
    const report = await bench('v2', [2], { tolerancePct: 0.000001, maxTrials: 4 });
    const step = report.steps[0]!;
    expect(report.target.request).toContain('/v2/models/fraud_detector/infer');
    expect(step.stable).toBe(false);
    expect(step.windows).toHaveLength(4);
    expect(step.stability).toMatch(/not stable: 4 windows \(the maximum\)/);
    expect(step.throughput).toBeGreaterThan(10);
    expect(step.errors.total).toBe(0);
  });

  it('counts failures by status', async () => {
    const data = {
      source: 'inline',
      documents: [{ transaction_amount: -1, merchant_category: 'grocery', time_since_last_txn: 1 }],
    };
    const report = await runBench({
      target: new HttpLoadTarget(server.url, inferencePath('predict', 'fraud_detector'), data),
      url: server.url,
      model: 'fraud_detector',
      protocol: 'predict',
      data: { source: 'inline', requests: 1 },
      plan: { mode: 'concurrency', levels: [2] },
      windowMs: 150,
      warmupMs: 50,
      stability: { maxTrials: 3 },
    });
    const step = report.steps[0]!;
    expect(step.throughput).toBe(0);
    expect(step.errors.total).toBeGreaterThan(0);
    expect(Object.keys(step.errors.byStatus)).toEqual(['400']);
  });
});

describe('open loop', () => {
  let stalling: Server;
  let url: string;
  let count = 0;
  beforeAll(async () => {
    // Answers at once, except that every 50th request stalls for 200 ms.
    stalling = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        const reply = (): void => {
          response.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
          response.end('{}');
        };
        if (++count % 50 === 0) setTimeout(reply, 200);
        else reply();
      });
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => stalling.close(() => resolve())));

  const data = { source: 'inline', documents: [{}] };
  const common = {
    url: '',
    model: 'echo',
    protocol: 'predict' as const,
    data: { source: 'inline', requests: 1 },
    windowMs: 1000,
    warmupMs: 100,
    stability: { maxTrials: 3, tolerancePct: 1000 },
    serverStats: false,
  };

  it('counts latency from the scheduled send time, so a stall delays every request due during it (no coordinated omission)', async () => {
    const target = new HttpLoadTarget(url, '/echo', data, false);
    const open = await runBench({
      ...common,
      url,
      target,
      plan: { mode: 'rate', rates: [100], distribution: 'constant', maxConnections: 1 },
    });
    const closed = await runBench({ ...common, url, target, plan: { mode: 'concurrency', levels: [1] } });
    const o = open.steps[0]!;
    const c = closed.steps[0]!;
    expect(o.openLoop!.scheduled).toBeGreaterThan(250);
    expect(o.openLoop!.delayed).toBeGreaterThan(10);
    expect(o.throughput).toBeGreaterThan(80);
    expect(o.throughput).toBeLessThan(120);
    // At 100 req/s, each 200 ms stall holds up ~20 scheduled requests (~4% of them): the open loop's p99 sees it.
    expect(o.latencyMs.p99).toBeGreaterThan(100);
    expect(o.latencyMs.max).toBeGreaterThan(190);
    // The closed loop sends nothing during a stall, so only 1 request in 50 is slow: its p95 stays small.
    expect(c.latencyMs.max).toBeGreaterThan(190);
    expect(c.latencyMs.p95).toBeLessThan(50);
  });
});
