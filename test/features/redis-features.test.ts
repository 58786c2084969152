import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFeatureFile } from '../../src/features/feature-loader.ts';
import { RedisFeatureStore } from '../../src/features/redis-feature-store.ts';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';
import { quietLogger } from '../support/quiet-logger.ts';

const root = mkdtempSync(join(tmpdir(), 'caliper-redis-features-'));
const usersCsv = join(root, 'users.csv');
const transaction = { transaction_amount: 249.99, merchant_category: 'electronics', time_since_last_txn: 310 };
let redis: PrivateRedis & { dispose(): Promise<void> };
let server: RunningServer;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function predict(body: unknown): Promise<Answer> {
  const response = await fetch(`${server.url}/models/fraud_detector/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Keeps `clients` request loops running until stopped; returns every answer. */
function load(clients: number): { stop(): Promise<Answer[]> } {
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async (_, c) => {
    while (running) answers.push(await predict({ ...transaction, user_id: `u${(c % 3) + 1}` }));
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return answers;
    },
  };
}

async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const loadUsers = () => loadFeatureFile({ file: usersCsv, store: redis.url, key: 'user:{user_id}', batchSize: 2 });
const features = () => server.repository.version('fraud_detector').features!;

beforeAll(async () => {
  redis = await startPrivateRedis();
  writeFileSync(usersCsv, 'user_id,user_txn_count,user_avg_amount\nu1,3,20\nu2,50,400\nu3,,12.5\n');
  const dir = join(root, 'fraud');
  mkdirSync(join(dir, '1'), { recursive: true });
  cpSync('examples/fraud-detector/2/model.onnx', join(dir, '1', 'model.onnx'));
  const yaml = readFileSync('examples/fraud-detector/2/model.yaml', 'utf8')
    .replace(/ {2}store: memory\n {2}source: .*\n/, `  store: redis\n  url: ${redis.url}\n`)
    .replace('timeout_ms: 20', 'timeout_ms: 100');
  writeFileSync(join(dir, 'model.yaml'), yaml);
  await loadUsers();
  server = await startServing({ paths: [dir], port: 0, logger: quietLogger() });
});

afterAll(async () => {
  await server?.close();
  await redis?.dispose();
  rmSync(root, { recursive: true, force: true });
});

describe('caliper features load', () => {
  it('writes one hash per entity, skips empty cells, sets the TTL and reports a summary (CLI, --json)', async () => {
    const { stdout } = await promisify(execFile)('node', [
      'bin/caliper.js',
      'features',
      'load',
      usersCsv,
      '--store',
      redis.url,
      '--key',
      'cli:{user_id}',
      '--ttl',
      '300',
      '--batch-size',
      '2',
      '--json',
    ]);
    const summary = JSON.parse(stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({
      rows: 3,
      keysWritten: 3,
      skippedRows: 0,
      batches: 2,
      ttlS: 300,
      fields: ['user_txn_count', 'user_avg_amount'],
      key: 'cli:{user_id}',
    });
    const client = new Redis(redis.url);
    try {
      expect(await client.hgetall('cli:u1')).toEqual({ user_txn_count: '3', user_avg_amount: '20' });
      expect(await client.hgetall('cli:u3')).toEqual({ user_avg_amount: '12.5' });
      const ttl = await client.ttl('cli:u2');
      expect(ttl).toBeGreaterThan(290);
      expect(ttl).toBeLessThanOrEqual(300);
    } finally {
      client.disconnect();
    }
  });

  it("replaces each entity's hash as a whole, atomically: a cell emptied in the file no longer answers; --merge keeps it", async () => {
    const first = join(root, 'replace-1.csv');
    const corrected = join(root, 'replace-2.csv');
    writeFileSync(first, 'user_id,user_txn_count,user_avg_amount\nr1,3,20\nr2,50,400\n');
    writeFileSync(corrected, 'user_id,user_txn_count,user_avg_amount\nr1,4,\nr2,,\n');
    const client = new Redis(redis.url);
    const monitor = await client.monitor();
    const commands: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (!String(args[1] ?? '').startsWith('merge:')) commands.push(String(args[0]).toLowerCase());
    });
    try {
      await loadFeatureFile({ file: first, store: redis.url, key: 'replace:{user_id}' });
      const summary = await loadFeatureFile({ file: corrected, store: redis.url, key: 'replace:{user_id}' });
      expect(summary).toMatchObject({ mode: 'replace', keysWritten: 1, keysCleared: 1, skippedRows: 0 });
      expect(await client.hgetall('replace:r1')).toEqual({ user_txn_count: '4' });
      expect(await client.exists('replace:r2')).toBe(0);
      // Every DEL and HSET travelled inside MULTI … EXEC: a lookup sees an entity's old hash or its new one.
      await new Promise((r) => setTimeout(r, 50));
      const writes = commands.filter((c) => c === 'multi' || c === 'exec' || c === 'del' || c === 'hset');
      expect(writes).toEqual(['multi', 'del', 'hset', 'del', 'hset', 'exec', 'multi', 'del', 'hset', 'del', 'exec']);

      await loadFeatureFile({ file: first, store: redis.url, key: 'merge:{user_id}' });
      const merged = await loadFeatureFile({ file: corrected, store: redis.url, key: 'merge:{user_id}', merge: true });
      expect(merged).toMatchObject({ mode: 'merge', keysWritten: 1, skippedRows: 1 });
      expect(await client.hgetall('merge:r1')).toEqual({ user_txn_count: '4', user_avg_amount: '20' });
      expect(await client.hgetall('merge:r2')).toEqual({ user_txn_count: '50', user_avg_amount: '400' });
    } finally {
      monitor.disconnect();
      client.disconnect();
    }
  });

  it("a served model answers a removed value with the field's default after the reload", async () => {
    const corrected = join(root, 'users-corrected.csv');
    writeFileSync(corrected, 'user_id,user_txn_count,user_avg_amount\nu9,50,400\n');
    await loadFeatureFile({ file: corrected, store: redis.url, key: 'user:{user_id}' });
    const full = await predict({ ...transaction, user_id: 'u9' });
    writeFileSync(corrected, 'user_id,user_txn_count,user_avg_amount\nu9,,\n');
    await loadFeatureFile({ file: corrected, store: redis.url, key: 'user:{user_id}' });
    const emptied = await predict({ ...transaction, user_id: 'u9' });
    const none = await predict(transaction);
    expect(full.body.fraud_probability).not.toBe(none.body.fraud_probability);
    expect(emptied.body.fraud_probability).toBe(none.body.fraud_probability);
  });

  it('refuses a key column or field the file lacks, naming it', async () => {
    await expect(loadFeatureFile({ file: usersCsv, store: redis.url, key: 'user:{uid}' })).rejects.toThrow(
      `--key: ${usersCsv} has no column uid (columns: user_id, user_txn_count, user_avg_amount)`,
    );
    await expect(
      loadFeatureFile({ file: usersCsv, store: redis.url, key: 'user:{user_id}', fields: ['age'] }),
    ).rejects.toThrow('--fields: ');
  });
});

describe('Redis feature store', () => {
  it('fetches a whole batch in one round trip (a single pipeline of HMGETs)', async () => {
    const store = await RedisFeatureStore.connect(redis.url, [
      { name: 'user_txn_count', type: 'integer', default: 0 },
      { name: 'user_avg_amount', type: 'number', default: 0 },
    ]);
    try {
      let writes = 0;
      const stream = (store.client as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
      const write = stream.write.bind(stream);
      stream.write = (...args: unknown[]) => {
        writes++;
        return write(...args);
      };
      const found = await store.lookup(['user:u1', 'user:nobody', 'user:u3', 'user:u2'], 1000);
      expect(found).toEqual([[3, 20], null, [undefined, 12.5], [50, 400]]);
      expect(writes).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('answers with the stored features and counts hits and misses', async () => {
    const before = { ...features().stats.outcomes };
    const u2 = await predict({ ...transaction, user_id: 'u2' });
    const nobody = await predict({ ...transaction, user_id: 'nobody' });
    const none = await predict(transaction);
    expect([u2.status, nobody.status, none.status]).toEqual([200, 200, 200]);
    expect(u2.body.fraud_probability).not.toBe(none.body.fraud_probability);
    expect(nobody.body.fraud_probability).toBe(none.body.fraud_probability);
    expect(u2.body.features_degraded).toBeUndefined();
    expect(features().stats.outcomes.hit - before.hit).toBe(1);
    expect(features().stats.outcomes.miss - before.miss).toBe(2);
  });
});

describe('faults: Redis paused or stopped under load', () => {
  it('a paused (SIGSTOP) Redis: every answer is 200, degraded ones carry features_degraded; answers recover after SIGCONT', async () => {
    const healthy = await predict({ ...transaction, user_id: 'u2' });
    const traffic = load(6);
    await new Promise((r) => setTimeout(r, 200));
    redis.pause();
    try {
      await until(async () => features().stats.outcomes.timeout > 0, 5000);
      await new Promise((r) => setTimeout(r, 600));
    } finally {
      redis.resume();
    }
    await until(
      async () => (await predict({ ...transaction, user_id: 'u2' })).body.features_degraded === undefined,
      5000,
    );
    const answers = await traffic.stop();
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    const degraded = answers.filter((a) => a.body.features_degraded === true);
    expect(degraded.length).toBeGreaterThan(0);
    // A degraded answer is the default-features answer.
    const defaults = await predict(transaction);
    for (const a of degraded) expect(a.body.fraud_probability).toBe(defaults.body.fraud_probability);
    expect(features().stats.degraded).toBeGreaterThanOrEqual(degraded.length);
    const recovered = await predict({ ...transaction, user_id: 'u2' });
    expect(recovered.body).toMatchObject({ fraud_probability: healthy.body.fraud_probability });
    expect(recovered.body.features_degraded).toBeUndefined();
  });

  it('a stopped Redis: zero 5xx and degraded answers; after a restart (and a reload of its data) lookups resume without restarting the server', async () => {
    const healthy = await predict({ ...transaction, user_id: 'u2' });
    const errorsBefore = features().stats.outcomes.error;
    const traffic = load(6);
    await new Promise((r) => setTimeout(r, 200));
    await redis.stop();
    await until(async () => features().stats.outcomes.error > errorsBefore, 5000);
    await new Promise((r) => setTimeout(r, 500));
    const down = await predict({ ...transaction, user_id: 'u2' });
    expect(down).toMatchObject({ status: 200, body: { features_degraded: true } });
    await redis.start();
    await loadUsers();
    await until(
      async () => (await predict({ ...transaction, user_id: 'u2' })).body.features_degraded === undefined,
      5000,
    );
    const answers = await traffic.stop();
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.some((a) => a.body.features_degraded === true)).toBe(true);
    const recovered = await predict({ ...transaction, user_id: 'u2' });
    expect(recovered.body.fraud_probability).toBe(healthy.body.fraud_probability);
  });

  it('exposes the lookup and degraded counters', () => {
    const stats = features().stats;
    expect(stats.outcomes.hit).toBeGreaterThan(0);
    expect(stats.outcomes.timeout).toBeGreaterThan(0);
    expect(stats.outcomes.error).toBeGreaterThan(0);
    expect(stats.degraded).toBe(stats.outcomes.timeout + stats.outcomes.error);
  });
});
