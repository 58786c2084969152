import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { boundedMessage, clip, ECHO_LIMIT } from '../../src/errors.ts';
import { quietLogger } from '../support/quiet-logger.ts';

let server: RunningServer;

beforeAll(async () => {
  server = await startServing({ paths: ['examples/fraud-detector'], port: 0, logger: quietLogger() });
});
afterAll(async () => {
  await server?.close();
});

const post = async (path: string, body: string | Uint8Array, contentType = 'application/json'): Promise<{ status: number; error: string; code: string; bytes: number }> => {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body: body as string });
  const text = await response.text();
  const parsed = JSON.parse(text) as { error: string; code: string };
  return { status: response.status, error: parsed.error, code: parsed.code, bytes: text.length };
};

const TRANSACTION = { transaction_amount: 20, merchant_category: 'fuel', time_since_last_txn: 600 };

describe('errors never echo unbounded client strings', () => {
  it('clips one long quoted string or run of characters to 100 characters with "…"', () => {
    expect(clip('x'.repeat(500))).toBe(`${'x'.repeat(ECHO_LIMIT)}…`);
    expect(boundedMessage(`field "${'a'.repeat(300)}": unknown`)).toBe(`field "${'a'.repeat(100)}…": unknown`);
    expect(boundedMessage(`${'b'.repeat(300)}: unknown field`)).toBe(`${'b'.repeat(100)}…: unknown field`);
    expect(boundedMessage('short "message"')).toBe('short "message"');
    expect(boundedMessage(`"${'w '.repeat(5000)}"`).length).toBeLessThanOrEqual(1001);
  });

  it('a 7 MB unknown field name on /predict: a short 400', async () => {
    const name = 'f'.repeat(7 * 1024 * 1024);
    const answer = await post('/models/fraud_detector/predict', `{"transaction_amount":1,"merchant_category":"fuel","time_since_last_txn":1,"${name}":1}`);
    expect(answer.status).toBe(400);
    expect(answer.bytes).toBeLessThan(1200);
    expect(answer.error).toContain(`${'f'.repeat(100)}…`);
  }, 60_000);

  it('a 6 MB v2 input name: a short 400', async () => {
    const name = 'n'.repeat(6 * 1024 * 1024);
    const answer = await post('/v2/models/fraud_detector/infer', JSON.stringify({ inputs: [{ name, datatype: 'FP32', shape: [1, 10], data: new Array(10).fill(0) }] }));
    expect(answer.status).toBe(400);
    expect(answer.bytes).toBeLessThan(1200);
    expect(answer.error).toContain('…');
  }, 60_000);
});

describe('misleading errors', () => {
  it('a "__proto__" key is refused by name, not called malformed JSON', async () => {
    const answer = await post('/models/fraud_detector/predict', `{"transaction_amount":1,"merchant_category":"fuel","time_since_last_txn":1,"__proto__":{"x":1}}`);
    expect(answer.status).toBe(400);
    expect(answer.code).toBe('CALIPER_INVALID_INPUT');
    expect(answer.error).toContain('"__proto__" or "constructor" key is not accepted');
    expect(answer.error).not.toMatch(/malformed/);
  });

  it('application/octet-stream on /predict is 415, not a list of unknown fields', async () => {
    for (const path of ['/predict', '/models/fraud_detector/predict']) {
      const answer = await post(path, new TextEncoder().encode(JSON.stringify(TRANSACTION)), 'application/octet-stream');
      expect(answer.status, path).toBe(415);
      expect(answer.code).toBe('CALIPER_UNSUPPORTED_MEDIA_TYPE');
      expect(answer.error).toContain('expected application/json');
    }
  });
});
