import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';

const example = join(import.meta.dirname, '../../examples/fraud-detector');
const transaction = { transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 300 };
const ADMIN = { authorization: 'Bearer admin-secret', 'content-type': 'application/json' };
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'caliper-ready-reload-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the fraud detector's version 1 named `name` in `repo`; `edit` rewrites its model.yaml. */
function fraudFolder(repo: string, name: string, edit: (yaml: string) => string = (y) => y): string {
  const dir = join(repo, name);
  mkdirSync(join(dir, '1'), { recursive: true });
  cpSync(join(example, '1', 'model.onnx'), join(dir, '1', 'model.onnx'));
  writeFileSync(
    join(dir, 'model.yaml'),
    edit(
      readFileSync(join(example, 'model.yaml'), 'utf8')
        .replace(/^name: .*$/m, `name: ${name}`)
        .replace(/^cache:.*$/m, ''),
    ),
  );
  return dir;
}

/** A repository with one good model and one whose ONNX file is corrupt. */
function repositoryWithBrokenModel(): string {
  const repo = mkdtempSync(join(root, 'repo-'));
  fraudFolder(repo, 'good');
  const broken = fraudFolder(repo, 'broken');
  writeFileSync(join(broken, '1', 'model.onnx'), 'not an onnx model');
  return repo;
}

const admin = (server: RunningServer, path: string, body: unknown = {}): Promise<Response> =>
  fetch(`${server.url}${path}`, { method: 'POST', headers: ADMIN, body: JSON.stringify(body) });

describe('strict readiness', () => {
  it('answers 503 with the failed model and its reason while a model failed to load; the index and the log say why; a successful load makes it ready', async () => {
    const repo = repositoryWithBrokenModel();
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _e, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const server = await startServing({ paths: [repo], port: 0, logger, auth: { adminToken: 'admin-secret' } });
    try {
      const ready = await fetch(`${server.url}/v2/health/ready`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { ready: boolean; failed_models: { name: string; reason: string }[] };
      expect(body.ready).toBe(false);
      expect(body.failed_models).toHaveLength(1);
      expect(body.failed_models[0]!.name).toBe('broken');
      expect(body.failed_models[0]!.reason).toMatch(/broken version 1: ONNX Runtime cannot load .*model\.onnx/);
      expect((await fetch(`${server.url}/v2/models/good/ready`)).status).toBe(200);

      const index = (await (await admin(server, '/v2/repository/index')).json()) as {
        name: string;
        state: string;
        reason?: string;
      }[];
      expect(index.find((e) => e.name === 'broken')).toMatchObject({
        state: 'UNAVAILABLE',
        reason: expect.stringMatching(/ONNX Runtime cannot load/),
      });
      const log = lines.join('');
      expect(log).toMatch(/model broken failed to load: broken version 1: ONNX Runtime cannot load/);
      expect(log).toMatch(/not ready: 1 model\(s\) failed to load \(broken\)/);

      // The repaired model loads through the repository API; the server is then ready.
      cpSync(join(example, '1', 'model.onnx'), join(repo, 'broken', '1', 'model.onnx'));
      const load = await admin(server, '/v2/repository/models/broken/load');
      expect(load.status).toBe(200);
      const now = await fetch(`${server.url}/v2/health/ready`);
      expect(now.status).toBe(200);
      expect(await now.json()).toEqual({ ready: true });
    } finally {
      await server.close();
    }
  });

  it('with strict readiness off (--no-strict-readiness) it is ready and still names the failed model', async () => {
    const server = await startServing({
      paths: [repositoryWithBrokenModel()],
      port: 0,
      logger: quietLogger(),
      strictReadiness: false,
    });
    try {
      const ready = await fetch(`${server.url}/v2/health/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ ready: true, failed_models: [{ name: 'broken' }] });
    } finally {
      await server.close();
    }
  });

  it('caliper serve prints the failed model and its reason at start, and --no-strict-readiness is accepted', async () => {
    const repo = repositoryWithBrokenModel();
    for (const flags of [[], ['--no-strict-readiness']]) {
      const child = spawn('node', ['bin/caliper.js', 'serve', repo, '--port', '0', ...flags], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no "caliper serving" line within 60 s:\n${output}`)),
            60_000,
          );
          const onData = (chunk: Buffer): void => {
            output += String(chunk);
            if (output.includes('caliper serving')) {
              clearTimeout(timer);
              resolve();
            }
          };
          child.stdout.on('data', onData);
          child.stderr.on('data', onData);
          child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`caliper serve exited with ${code}:\n${output}`));
          });
        });
      } finally {
        child.kill('SIGTERM');
      }
      expect(output).toMatch(/model broken failed to load: broken version 1: ONNX Runtime cannot load/);
      expect(output).toMatch(flags.length === 0 ? /not ready: 1 model\(s\) failed to load/ : /ready anyway/);
    }
  });
});

describe('POST /v2/repository/models/NAME/load on a served model reloads it', () => {
  it('serves a newly added version and an edited model.yaml with zero failed requests, and says what it serves', async () => {
    const repo = mkdtempSync(join(root, 'reload-'));
    const dir = fraudFolder(repo, 'fraud');
    const server = await startServing({
      paths: [repo],
      port: 0,
      logger: quietLogger(),
      auth: { adminToken: 'admin-secret' },
    });
    // phase: how many reloads had answered when the request was sent.
    const answers: { phase: number; status: number; version?: string; isFraud?: boolean }[] = [];
    let phase = 0;
    let running = true;
    const clients = Array.from({ length: 4 }, async () => {
      while (running) {
        const sentIn = phase;
        const response = await fetch(`${server.url}/models/fraud/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(transaction),
        });
        const body = (await response.json()) as { model_version?: string; is_fraud?: boolean };
        answers.push({ phase: sentIn, status: response.status, version: body.model_version, isFraud: body.is_fraud });
      }
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      // Version 2 appears in the folder.
      mkdirSync(join(dir, '2'));
      cpSync(join(dir, '1', 'model.onnx'), join(dir, '2', 'model.onnx'));
      const first = await admin(server, '/v2/repository/models/fraud/load');
      expect(first.status).toBe(200);
      expect(await first.json()).toEqual({ name: 'fraud', loaded: true, reloaded: true, version: 2, versions: [2] });
      phase = 1;
      await new Promise((r) => setTimeout(r, 200));

      // model.yaml changes: every transaction is now flagged.
      writeFileSync(
        join(dir, 'model.yaml'),
        readFileSync(join(dir, 'model.yaml'), 'utf8').replace('threshold: 0.7', 'threshold: 0.0'),
      );
      const second = await admin(server, '/v2/repository/models/fraud/load');
      expect(second.status).toBe(200);
      expect(await second.json()).toMatchObject({ reloaded: true, version: 2 });
      phase = 2;
      await new Promise((r) => setTimeout(r, 200));
      running = false;
      await Promise.all(clients);

      expect(answers.filter((a) => a.status !== 200)).toEqual([]);
      expect(answers.filter((a) => a.phase >= 1 && a.version !== '2')).toEqual([]);
      expect(answers.filter((a) => a.phase === 2 && a.isFraud !== true)).toEqual([]);
      expect(answers.filter((a) => a.phase === 2).length).toBeGreaterThan(0);
    } finally {
      running = false;
      await Promise.all(clients);
      await server.close();
    }
  });

  it('a failed reload keeps the running versions serving and says why', async () => {
    const repo = mkdtempSync(join(root, 'reload-bad-'));
    const dir = fraudFolder(repo, 'fraud');
    const server = await startServing({
      paths: [repo],
      port: 0,
      logger: quietLogger(),
      auth: { adminToken: 'admin-secret' },
    });
    try {
      mkdirSync(join(dir, '2'));
      writeFileSync(join(dir, '2', 'model.onnx'), 'corrupt');
      const load = await admin(server, '/v2/repository/models/fraud/load');
      expect(load.status).toBeGreaterThanOrEqual(400);
      expect(((await load.json()) as { error: string }).error).toMatch(/fraud version 2: ONNX Runtime cannot load/);
      const answer = await fetch(`${server.url}/models/fraud/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(transaction),
      });
      expect(answer.status).toBe(200);
      expect(((await answer.json()) as { model_version: string }).model_version).toBe('1');
      expect((await fetch(`${server.url}/v2/health/ready`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('reloads an in-memory feature store from its file: a value removed from the file is no longer used', async () => {
    const repo = mkdtempSync(join(root, 'reload-features-'));
    const dir = join(repo, 'fraud_detector');
    mkdirSync(join(dir, '1'), { recursive: true });
    cpSync(join(example, '2', 'model.onnx'), join(dir, '1', 'model.onnx'));
    writeFileSync(
      join(dir, 'model.yaml'),
      readFileSync(join(example, '2', 'model.yaml'), 'utf8').replace(/^cache:.*$/m, ''),
    );
    mkdirSync(join(dir, 'features'));
    writeFileSync(join(dir, 'features', 'users.csv'), 'user_id,user_txn_count,user_avg_amount\nu1,40,900\n');
    const server = await startServing({
      paths: [repo],
      port: 0,
      logger: quietLogger(),
      auth: { adminToken: 'admin-secret' },
    });
    const probability = async (body: unknown): Promise<number> => {
      const response = await fetch(`${server.url}/models/fraud_detector/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return ((await response.json()) as { fraud_probability: number }).fraud_probability;
    };
    try {
      const known = await probability({ ...transaction, user_id: 'u1' });
      const unknown = await probability(transaction);
      expect(known).not.toBe(unknown);
      writeFileSync(join(dir, 'features', 'users.csv'), 'user_id,user_txn_count,user_avg_amount\nu1,,\n');
      expect((await admin(server, '/v2/repository/models/fraud_detector/load')).status).toBe(200);
      expect(await probability({ ...transaction, user_id: 'u1' })).toBe(unknown);
    } finally {
      await server.close();
    }
  });
});
