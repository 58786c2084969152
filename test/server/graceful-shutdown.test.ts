import { spawn } from 'node:child_process';
import { get } from 'node:http';
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

describe('caliper serve', () => {
  it('on SIGTERM finishes the requests in flight, then exits 0', async () => {
    // The fraud example with a generous deadline, so that the only thing under test is the shutdown.
    const dir = mkdtempSync(join(tmpdir(), 'caliper-shutdown-'));
    mkdirSync(join(dir, '1'));
    cpSync('examples/fraud-detector/1/model.onnx', join(dir, '1', 'model.onnx'));
    writeFileSync(join(dir, 'model.yaml'), readFileSync('examples/fraud-detector/model.yaml', 'utf8').replace(/timeout_ms: \d+/, 'timeout_ms: 120000').replace(/^cache:.*$/m, ''));
    const port = await freePort();
    const child = spawn(process.execPath, ['bin/caliper.js', 'serve', dir, '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CALIPER_LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const url = `http://127.0.0.1:${port}`;
    await waitUntilReady(url, 30_000);

    const instance = { transaction_amount: 20, merchant_category: 'fuel', time_since_last_txn: 600 };
    const body = JSON.stringify({ instances: new Array(4000).fill(instance) });
    const requests = Array.from({ length: 6 }, () =>
      fetch(`${url}/models/fraud_detector/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        .then(async (r) => ({ status: r.status, predictions: ((await r.json()) as { predictions?: unknown[] }).predictions?.length })));
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
    const child = spawn(process.execPath, ['bin/caliper.js', 'serve', 'no/such/dir', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('caliper: no/such/dir: not a directory (expected a model folder with model.yaml, or a repository of model folders)');
  });
});
