import { spawn } from 'node:child_process';
import { Agent, get, request as httpRequest } from 'node:http';
import {
  credentials,
  loadPackageDefinition,
  type Client,
  type ClientDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { INFERENCE_PROTO_PATH } from '../../src/protocol/service-definition.ts';
import { once } from 'node:events';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/redis-server.ts';

/** Readiness over a one-off connection (no keep-alive), so the requests under test never reuse it. */
function readyStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    get(`${url}/v2/health/ready`, { agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

async function waitUntilReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await readyStatus(url)) === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server at ${url} not ready within ${timeoutMs} ms`);
}

/** The fraud example with a generous deadline and no cache, so that the only thing under test is the shutdown. */
function shutdownModelDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'caliper-shutdown-'));
  mkdirSync(join(dir, '1'));
  cpSync('examples/fraud-detector/1/model.onnx', join(dir, '1', 'model.onnx'));
  writeFileSync(
    join(dir, 'model.yaml'),
    readFileSync('examples/fraud-detector/model.yaml', 'utf8')
      .replace(/timeout_ms: \d+/, 'timeout_ms: 120000')
      .replace(/^cache:.*$/m, ''),
  );
  return dir;
}

interface LoadTally {
  sent: number;
  ok: number;
  afterSignal: number;
  failed: string[];
  closedBy: number;
}

/** One keep-alive client: POSTs back to back on its one connection until an answer says `Connection: close`. */
async function keepAliveClient(url: string, body: string, signalled: () => boolean, tally: LoadTally): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (;;) {
      tally.sent++;
      const answer = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const req = httpRequest(
          `${url}/models/fraud_detector/predict`,
          {
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      }).catch((error: NodeJS.ErrnoException) => ({ status: -1, connection: error.code ?? error.message }));
      if (answer.status === 200) tally.ok++;
      else tally.failed.push(answer.status === -1 ? `error ${answer.connection}` : `HTTP ${answer.status}`);
      if (signalled()) tally.afterSignal++;
      if (answer.status !== 200) return;
      if (answer.connection === 'close') {
        tally.closedBy++;
        return;
      }
    }
  } finally {
    agent.destroy();
  }
}

describe('caliper serve', () => {
  it('on SIGTERM under 32 keep-alive clients and a gRPC stream: no resets, no failed requests, exit 0', async () => {
    const dir = shutdownModelDir();
    const [port, grpcPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      ['bin/caliper.js', 'serve', dir, '--port', String(port), '--grpc-port', String(grpcPort)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntilReady(url, 30_000);
      let signalled = false;
      const body = JSON.stringify({ transaction_amount: 20, merchant_category: 'fuel', time_since_last_txn: 600 });
      const http: LoadTally = { sent: 0, ok: 0, afterSignal: 0, failed: [], closedBy: 0 };
      const clients = Array.from({ length: 32 }, () => keepAliveClient(url, body, () => signalled, http));

      // One bidirectional stream kept 8 messages deep; it half-closes once the HTTP side is told the server is going.
      const definition = loadSync(INFERENCE_PROTO_PATH, {
        keepCase: true,
        longs: Number,
        defaults: true,
        oneofs: true,
      });
      const pkg = loadPackageDefinition(definition) as unknown as {
        inference: {
          GRPCInferenceService: new (
            address: string,
            creds: ReturnType<typeof credentials.createInsecure>,
          ) => Client & { ModelStreamInfer(): ClientDuplexStream<object, { error_message: string }> };
        };
      };
      const grpcClient = new pkg.inference.GRPCInferenceService(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
      const stream = grpcClient.ModelStreamInfer();
      const features = Buffer.alloc(40);
      const grpcTally = { sent: 0, answered: 0, afterSignal: 0, errors: [] as string[] };
      const send = (): void => {
        if (http.closedBy > 0) {
          stream.end();
          return;
        }
        grpcTally.sent++;
        stream.write({
          model_name: 'fraud_detector',
          id: String(grpcTally.sent),
          inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 10] }],
          raw_input_contents: [features],
        });
      };
      const streamDone = new Promise<string>((resolve) => {
        stream.on('data', (answer: { error_message: string }) => {
          grpcTally.answered++;
          if (signalled) grpcTally.afterSignal++;
          if (answer.error_message) grpcTally.errors.push(answer.error_message);
          send();
        });
        stream.on('error', (error: ServiceError) => resolve(`${error.code} ${error.details}`));
        stream.on('status', (status: { code: number }) => resolve(String(status.code)));
      });
      for (let i = 0; i < 8; i++) send();
      // The stream is under test only once it is flowing: its channel connects lazily, on the first write.
      const flowingBy = Date.now() + 15_000;
      while (grpcTally.answered === 0 && Date.now() < flowingBy) await new Promise((r) => setTimeout(r, 20));
      expect(grpcTally.answered, 'the gRPC stream answered before SIGTERM').toBeGreaterThan(0);

      await new Promise((r) => setTimeout(r, 1500));
      const beforeSignal = http.ok + grpcTally.answered;
      signalled = true;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      await Promise.all(clients);
      const streamStatus = await streamDone;
      grpcClient.close();

      console.info(
        `SIGTERM under load: ${beforeSignal} answered before; after the signal ${http.afterSignal} HTTP requests on 32 keep-alive connections and ${grpcTally.afterSignal} stream messages answered; HTTP ${http.sent} sent / ${http.ok} ok / ${http.failed.length} failed, gRPC ${grpcTally.sent} sent / ${grpcTally.answered} answered`,
      );
      expect(http.failed).toEqual([]);
      expect(http.ok).toBe(http.sent);
      expect(http.closedBy).toBe(32);
      expect(http.afterSignal).toBeGreaterThanOrEqual(32);
      expect(grpcTally.errors).toEqual([]);
      expect(grpcTally.answered).toBe(grpcTally.sent);
      expect(streamStatus).toBe('0');
      expect(code, stderr).toBe(0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('on SIGTERM finishes the requests in flight, then exits 0', async () => {
    // The fraud example with a generous deadline, so that the only thing under test is the shutdown.
    const dir = mkdtempSync(join(tmpdir(), 'caliper-shutdown-'));
    mkdirSync(join(dir, '1'));
    cpSync('examples/fraud-detector/1/model.onnx', join(dir, '1', 'model.onnx'));
    writeFileSync(
      join(dir, 'model.yaml'),
      readFileSync('examples/fraud-detector/model.yaml', 'utf8')
        .replace(/timeout_ms: \d+/, 'timeout_ms: 120000')
        .replace(/^cache:.*$/m, ''),
    );
    const port = await freePort();
    const child = spawn(process.execPath, ['bin/caliper.js', 'serve', dir, '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const url = `http://127.0.0.1:${port}`;
    await waitUntilReady(url, 30_000);

    const instance = { transaction_amount: 20, merchant_category: 'fuel', time_since_last_txn: 600 };
    const body = JSON.stringify({ instances: new Array(4000).fill(instance) });
    const requests = Array.from({ length: 6 }, () =>
      fetch(`${url}/models/fraud_detector/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      }).then(async (r) => ({
        status: r.status,
        predictions: ((await r.json()) as { predictions?: unknown[] }).predictions?.length,
      })),
    );
    await new Promise((r) => setTimeout(r, 60));
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    const results = await Promise.all(requests);

    expect(results).toEqual(new Array(6).fill({ status: 200, predictions: 4000 }));
    expect(code, stderr).toBe(0);
    await expect(fetch(`${url}/v2/health/live`)).rejects.toThrow();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits non-zero with a one-line reason when nothing can be served', async () => {
    const child = spawn(process.execPath, ['bin/caliper.js', 'serve', 'no/such/dir', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr.trim()).toBe(
      'caliper: no/such/dir: not a directory (expected a model folder with model.yaml, or a repository of model folders)',
    );
  });
});
