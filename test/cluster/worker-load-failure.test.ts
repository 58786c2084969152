import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/system/free-port.ts';

const BODY = JSON.stringify({ transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 30 });

/**
 * A model whose hook module fails to load in worker 2 while a marker file exists (a fault in one process, as a
 * corrupt cache or an exhausted resource would be): worker 1 serves, worker 2 takes no traffic and is started
 * again with backoff; once the fault is gone it loads, and both serve.
 */
describe('caliper serve --workers 2 with a worker that fails to load', () => {
  const root = mkdtempSync(join(tmpdir(), 'caliper-worker-fault-'));
  const marker = join(root, 'worker-2-fails');
  let child: ChildProcessWithoutNullStreams;
  let url = '';
  let output = '';

  const status = async (path: string): Promise<{ status: number; worker: string | null }> => {
    const response = await fetch(`${url}${path}`, {
      method: path.endsWith('predict') ? 'POST' : 'GET',
      headers: { 'content-type': 'application/json', connection: 'close' },
      ...(path.endsWith('predict') ? { body: BODY } : {}),
    }).catch(() => undefined);
    if (!response) return { status: 0, worker: null };
    await response.arrayBuffer();
    return { status: response.status, worker: response.headers.get('x-caliper-worker') };
  };
  const waitFor = async (check: () => Promise<boolean> | boolean, what: string, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      // A server that exited (a port taken between freePort and listen, a crash) fails at once, with its output.
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `the server exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}\n${output.slice(-3000)}`,
        );
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    const dir = join(root, 'models', 'fraud_faulty');
    mkdirSync(join(dir, '1'), { recursive: true });
    cpSync('examples/fraud-detector/1/model.onnx', join(dir, '1', 'model.onnx'));
    const yaml = readFileSync('examples/fraud-detector/model.yaml', 'utf8')
      .replace(/^name: .*$/m, 'name: fraud_faulty')
      .replace(/^cache:.*$/m, '');
    writeFileSync(join(dir, 'model.yaml'), `${yaml}hooks: ./hooks.cjs\n`);
    writeFileSync(
      join(dir, 'hooks.cjs'),
      `if (process.env.CALIPER_WORKER_SLOT === '2' && require('node:fs').existsSync(${JSON.stringify(marker)}))
  throw new Error('injected fault: worker 2 cannot load this hook');
exports.postprocess = (prediction) => prediction;
`,
    );
    writeFileSync(marker, '');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    child = spawn(
      process.execPath,
      ['bin/caliper.js', 'serve', join(root, 'models'), '--workers', '2', '--port', String(port)],
      { env: { ...process.env, CALIPER_LOG_LEVEL: 'info' } },
    );
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
  });

  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('sends no request to the worker that failed, keeps readiness 503, and restarts it with backoff', async () => {
    await waitFor(
      async () => (await status('/models/fraud_faulty/predict')).status === 200,
      'worker 1 serving',
      110_000,
    );
    await waitFor(() => /"crashes_in_a_row":2/.test(output), 'worker 2 failing twice', 60_000);
    expect(output).toMatch(/worker 2 takes no traffic: it did not load fraud_faulty, which the other workers serve/);
    expect(output).toContain('injected fault: worker 2 cannot load this hook');
    const answers = await Promise.all(Array.from({ length: 12 }, () => status('/models/fraud_faulty/predict')));
    expect(answers).toEqual(answers.map(() => ({ status: 200, worker: '1' })));
    expect((await status('/v2/health/ready')).status).toBe(503);
  }, 200_000);

  it('lets the worker serve once it loads, and is ready only then', async () => {
    rmSync(marker);
    expect(existsSync(marker)).toBe(false);
    await waitFor(async () => (await status('/v2/health/ready')).status === 200, 'both workers ready', 60_000);
    const answers = await Promise.all(Array.from({ length: 8 }, () => status('/models/fraud_faulty/predict')));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(new Set(answers.map((a) => a.worker))).toEqual(new Set(['1', '2']));
  }, 90_000);
});

describe('caliper serve --workers 2 with nothing any worker can load', () => {
  it('exits 1 with the reason, as one process would', async () => {
    const root = mkdtempSync(join(tmpdir(), 'caliper-worker-nothing-'));
    try {
      const dir = join(root, 'broken');
      mkdirSync(join(dir, '1'), { recursive: true });
      writeFileSync(join(dir, '1', 'model.onnx'), 'not an onnx model');
      writeFileSync(join(dir, 'model.yaml'), readFileSync('examples/fraud-detector/model.yaml', 'utf8'));
      const port = await freePort();
      const child = spawn(
        process.execPath,
        ['bin/caliper.js', 'serve', root, '--workers', '2', '--port', String(port)],
        {
          env: { ...process.env, CALIPER_LOG_LEVEL: 'silent' },
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(1);
      expect(stderr).toMatch(/^caliper: no model could be loaded from .*broken/m);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
