import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFingerprint } from '../../src/cache/answer-fingerprint.ts';
import { readModelConfig } from '../../src/config/model-config-file.ts';
import { startServing } from '../../src/server/serving.ts';
import { quietLogger } from '../support/quiet-logger.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis-server.ts';

const example = join(import.meta.dirname, '../../examples/fraud-detector');
const transaction = { transaction_amount: 120, merchant_category: 'travel', time_since_last_txn: 300 };

let redis: PrivateRedis & { dispose(): Promise<void> };
let root: string;

beforeAll(async () => {
  redis = await startPrivateRedis();
  root = mkdtempSync(join(tmpdir(), 'caliper-cache-key-'));
});

afterAll(async () => {
  await redis.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** A fraud detector folder whose answers come from a shared Redis cache; `extra` is appended to model.yaml. */
function writeModel(dir: string, threshold: number, extra = ''): void {
  mkdirSync(join(dir, '1'), { recursive: true });
  cpSync(join(example, '1', 'model.onnx'), join(dir, '1', 'model.onnx'));
  // Every rewrite leaves the ONNX file identical: same bytes, size and modification time.
  const fixed = new Date('2026-01-01T00:00:00Z');
  utimesSync(join(dir, '1', 'model.onnx'), fixed, fixed);
  const yaml = readFileSync(join(example, 'model.yaml'), 'utf8')
    .replace('threshold: 0.7', `threshold: ${threshold}`)
    .replace(/^cache:.*$/m, `cache: { backend: redis, redis_url: "${redis.url}", ttl_s: 600 }`);
  writeFileSync(join(dir, 'model.yaml'), `${yaml}${extra}`);
}

/**
 * Starts a server on `dir` and sends the same request until two answers came from the cache (Redis may be
 * slow to answer on a busy machine, and a slow lookup counts as a miss); stops it; the answers, in order.
 */
async function answersOf(dir: string): Promise<Record<string, unknown>[]> {
  const server = await startServing({ paths: [dir], port: 0, logger: quietLogger() });
  try {
    const answers: Record<string, unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      const response = await fetch(`${server.url}/models/fraud_detector/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(transaction),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as Record<string, unknown>;
      delete body.latency_ms;
      answers.push(body);
      const stats = (await (await fetch(`${server.url}/v2/models/fraud_detector/stats`)).json()) as {
        model_stats: { inference_stats: { cache_hit: { count: number } } }[];
      };
      if (stats.model_stats[0]!.inference_stats.cache_hit.count >= 2) return answers;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no answer came from the Redis cache');
  } finally {
    await server.close();
  }
}

describe('the shared response cache key covers everything that shapes an answer', () => {
  it('a changed postprocess (same ONNX file, same size and mtime) is answered under the new config after a restart', async () => {
    const dir = join(root, 'postprocess');
    writeModel(dir, 0.7);
    const before = await answersOf(dir);
    expect(before[0]!.is_fraud).toBe(false);
    for (const answer of before) expect(answer).toEqual(before[0]);

    // Only the threshold changes; the ONNX file keeps its bytes, size and modification time.
    writeModel(dir, 0.0);
    const after = await answersOf(dir);
    for (const answer of after) expect(answer.is_fraud).toBe(true);
  });

  it('a changed hook module is answered under the new hook after a restart', async () => {
    const dir = join(root, 'hooks');
    writeModel(dir, 0.7, 'hooks: ./hooks.mjs\n');
    writeFileSync(join(dir, 'hooks.mjs'), 'export function postprocess(p) { return { ...p, tier: "gold" }; }\n');
    const before = await answersOf(dir);
    for (const answer of before) expect(answer.tier).toBe('gold');
    writeFileSync(join(dir, 'hooks.mjs'), 'export function postprocess(p) { return { ...p, tier: "blue" }; }\n');
    const after = await answersOf(dir);
    for (const answer of after) expect(answer.tier).toBe('blue');
  });

  it('the fingerprint follows the model bytes, not the file size or time', async () => {
    const dir = join(root, 'bytes');
    writeModel(dir, 0.7);
    const config = readModelConfig(dir);
    const file = join(dir, '1', 'model.onnx');
    const mtime = new Date('2026-01-01T00:00:00Z');
    utimesSync(file, mtime, mtime);
    const first = await answerFingerprint(config, file);
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0x01;
    writeFileSync(file, bytes);
    utimesSync(file, mtime, mtime);
    expect(await answerFingerprint(config, file)).not.toBe(first);
    // A config change that does not shape answers (where the folder is, the TTL) keeps sharing entries.
    expect(
      await answerFingerprint(
        { ...config, dir: '/elsewhere', file: '/elsewhere/model.yaml', cache: { ...config.cache, ttlS: 5 } },
        file,
      ),
    ).toBe(await answerFingerprint(config, file));
  });
});
