import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceKindFor } from '../../src/config/model-config.ts';
import { InThreadInstance, WorkerInstance } from '../../src/runtime/model-instance.ts';
import { startServing } from '../../src/server/serving.ts';
import { WORKER_CORES_ENV } from '../../src/system/usable-cores.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { freePort } from '../support/redis-server.ts';

const example = join(import.meta.dirname, '../../examples/fraud-detector');
const root = join(import.meta.dirname, '../..');
let repo: string;

/** The fraud example with no `instances.kind`: the default, auto, decides. */
beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), 'caliper-instance-kind-'));
  const dir = join(repo, 'fraud_detector');
  mkdirSync(join(dir, '1'), { recursive: true });
  cpSync(join(example, '1', 'model.onnx'), join(dir, '1', 'model.onnx'));
  writeFileSync(
    join(dir, 'model.yaml'),
    readFileSync(join(example, 'model.yaml'), 'utf8')
      .replace(/^instances:.*$/m, 'instances: { count: 1, intra_op_threads: 1 }')
      .replace(/^cache:.*$/m, ''),
  );
});
afterAll(() => rmSync(repo, { recursive: true, force: true }));

interface Served {
  kind: string;
  reason: string;
  log: string;
  answer: { fraud_probability: number };
}

/** `caliper serve` of the auto-kind model under `taskset -c CORES`: its config's instance kind, its log, one answer. */
async function serveOn(cores: string): Promise<Served> {
  const port = await freePort();
  const child = spawn(
    'taskset',
    ['-c', cores, process.execPath, 'bin/caliper.js', 'serve', repo, '--port', String(port)],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CALIPER_LOG_LEVEL: 'info' },
    },
  );
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`caliper serve exited (${child.exitCode}): ${log}`);
      const ready = await fetch(`${url}/v2/health/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (i > 300) throw new Error(`not ready: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const config = (await (await fetch(`${url}/v2/models/fraud_detector/config`)).json()) as {
      parameters: Record<string, { string_value: string }>;
    };
    const answer = (await (
      await fetch(`${url}/models/fraud_detector/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 300 }),
      })
    ).json()) as Served['answer'];
    return {
      kind: config.parameters.caliper_instance_kind!.string_value,
      reason: config.parameters.caliper_instance_kind_reason!.string_value,
      log,
      answer,
    };
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

describe('instances.kind: auto (the default)', () => {
  it('runs in the serving thread when the process can use one core (CPU affinity), and says so in the config and the load log', async () => {
    const served = await serveOn('0');
    expect(served.kind).toBe('in_thread');
    expect(served.reason).toMatch(/^auto: the process can use 1 core/);
    expect(served.log).toMatch(
      /model fraud_detector ready \(version 1; 1 in_thread instance, auto: the process can use 1 core/,
    );
    expect(served.answer.fraud_probability).toBeGreaterThan(0);
  }, 60_000);

  it.skipIf(availableParallelism() < 2)(
    'runs on worker threads when the process can use more cores',
    async () => {
      const served = await serveOn('0,1');
      expect(served.kind).toBe('worker');
      expect(served.reason).toMatch(/^auto: the process can use 2 cores/);
      expect(served.log).toMatch(
        /model fraud_detector ready \(version 1; 1 worker instance, auto: the process can use 2 cores/,
      );
      expect(served.answer.fraud_probability).toBeGreaterThan(0);
    },
    60_000,
  );

  it('loads the instance kind it reports: a one-core share (serve --workers) gets an in-thread instance, more cores a worker', async () => {
    const kinds: unknown[] = [];
    for (const share of ['1', '2']) {
      process.env[WORKER_CORES_ENV] = share;
      try {
        const server = await startServing({ paths: [repo], port: 0, logger: quietLogger() });
        try {
          const version = server.repository.get('fraud_detector').versions.get(1)!;
          kinds.push(version.pool.instances[0]!.constructor);
          expect(version.config.instances.requestedKind).toBe('auto');
        } finally {
          await server.close();
        }
      } finally {
        delete process.env[WORKER_CORES_ENV];
      }
    }
    expect(kinds).toEqual([InThreadInstance, WorkerInstance]);
  }, 60_000);

  it('keeps a kind set in model.yaml whatever the cores, and says it was set there', () => {
    expect(instanceKindFor('worker', 1)).toEqual({
      kind: 'worker',
      requestedKind: 'worker',
      kindReason: 'set in model.yaml',
    });
    expect(instanceKindFor('in_thread', 8)).toMatchObject({ kind: 'in_thread', requestedKind: 'in_thread' });
    expect(instanceKindFor('auto', 1).kind).toBe('in_thread');
    expect(instanceKindFor('auto', 4).kind).toBe('worker');
  });
});
