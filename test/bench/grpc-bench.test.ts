import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBench } from '../../src/bench/bench-runner.ts';
import { GrpcLoadTarget, parseGrpcAddress } from '../../src/bench/grpc-load-target.ts';
import { readSampleRequests, toV2Requests } from '../../src/bench/request-data.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';

const FASHION = 'examples/fashion-mnist';

describe('caliper bench over gRPC', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServing({ paths: [FASHION], port: 0, grpcPort: 0, logger: createLogger('silent') });
  });
  afterAll(async () => server?.close());

  it('loads ModelInfer with the sample request and reads the per-stage breakdown over HTTP', async () => {
    const data = toV2Requests(readSampleRequests(FASHION), FASHION);
    const url = `grpc://127.0.0.1:${server.grpc!.port}`;
    const report = await runBench({
      target: new GrpcLoadTarget(url, 'fashion_mnist', data),
      url,
      statsUrl: server.url,
      model: 'fashion_mnist',
      protocol: 'grpc',
      data: { source: data.source, requests: data.documents.length },
      plan: { mode: 'concurrency', levels: [2] },
      windowMs: 250,
      warmupMs: 100,
      stability: { tolerancePct: 1000, maxTrials: 3 },
    });
    const [step] = report.steps;
    expect(report.target.request).toMatch(/^ModelInfer grpc:\/\/127\.0\.0\.1:\d+ fashion_mnist$/);
    expect(step!.errors).toEqual({ total: 0, byStatus: {} });
    expect(step!.throughput).toBeGreaterThan(10);
    expect(step!.serverStats?.executions).toBeGreaterThan(0);
  });

  it('counts failures by gRPC status and refuses an HTTP URL', async () => {
    const data = toV2Requests(readSampleRequests(FASHION), FASHION);
    const url = `grpc://127.0.0.1:${server.grpc!.port}`;
    const report = await runBench({
      target: new GrpcLoadTarget(url, 'no_such_model', data),
      url,
      model: 'no_such_model',
      protocol: 'grpc',
      serverStats: false,
      data: { source: data.source, requests: data.documents.length },
      plan: { mode: 'concurrency', levels: [1] },
      windowMs: 150,
      warmupMs: 50,
      stability: { tolerancePct: 1000, maxTrials: 3 },
    });
    expect(Object.keys(report.steps[0]!.errors.byStatus)).toEqual(['grpc-5']); // NOT_FOUND
    expect(() => parseGrpcAddress('http://127.0.0.1:8000')).toThrow('expected grpc://HOST:PORT');
  });
});
