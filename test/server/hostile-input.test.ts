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

const post = async (
  path: string,
  body: string | Uint8Array,
  contentType = 'application/json',
): Promise<{ status: number; error: string; code: string; bytes: number }> => {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: body as string,
  });
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
    const answer = await post(
      '/models/fraud_detector/predict',
      `{"transaction_amount":1,"merchant_category":"fuel","time_since_last_txn":1,"${name}":1}`,
    );
    expect(answer.status).toBe(400);
    expect(answer.bytes).toBeLessThan(1200);
    expect(answer.error).toContain(`${'f'.repeat(100)}…`);
  }, 60_000);

  it('a 6 MB v2 input name: a short 400', async () => {
    const name = 'n'.repeat(6 * 1024 * 1024);
    const answer = await post(
      '/v2/models/fraud_detector/infer',
      JSON.stringify({ inputs: [{ name, datatype: 'FP32', shape: [1, 10], data: new Array(10).fill(0) }] }),
    );
    expect(answer.status).toBe(400);
    expect(answer.bytes).toBeLessThan(1200);
    expect(answer.error).toContain('…');
  }, 60_000);
});

describe('misleading errors', () => {
  it('a "__proto__" key is refused by name, not called malformed JSON', async () => {
    const answer = await post(
      '/models/fraud_detector/predict',
      `{"transaction_amount":1,"merchant_category":"fuel","time_since_last_txn":1,"__proto__":{"x":1}}`,
    );
    expect(answer.status).toBe(400);
    expect(answer.code).toBe('CALIPER_INVALID_INPUT');
    expect(answer.error).toContain('"__proto__" or "constructor" key is not accepted');
    expect(answer.error).not.toMatch(/malformed/);
  });

  it('application/octet-stream on /predict is 415, not a list of unknown fields', async () => {
    for (const path of ['/predict', '/models/fraud_detector/predict']) {
      const answer = await post(
        path,
        new TextEncoder().encode(JSON.stringify(TRANSACTION)),
        'application/octet-stream',
      );
      expect(answer.status, path).toBe(415);
      expect(answer.code).toBe('CALIPER_UNSUPPORTED_MEDIA_TYPE');
      expect(answer.error).toContain('expected application/json');
    }
  });
});

describe('hostile v2 JSON tensors', () => {
  const width = (): number => server.repository.version('fraud_detector').signature.inputs[0]!.shape[1]!;
  const infer = (
    data: string,
    datatype = 'FP32',
    shape = `[1, ${width()}]`,
  ): Promise<{ status: number; error: string; code: string; bytes: number }> =>
    post(
      '/v2/models/fraud_detector/infer',
      `{"inputs":[{"name":"features","datatype":"${datatype}","shape":${shape},"data":${data}}]}`,
    );

  it('data nested 100,000 (or 1,000) deep is a 400 naming inputs.<name>.data, never a stack overflow', async () => {
    for (const depth of [100_000, 1_000, 65]) {
      const answer = await infer(`${'['.repeat(depth)}0${']'.repeat(depth)}`);
      expect(answer.status, `depth ${depth}`).toBe(400);
      expect(answer.code).toBe('CALIPER_INVALID_INPUT');
      expect(answer.error).toMatch(/^inputs\.features\.data: arrays nested more than 64 deep/);
    }
    // Nesting as deep as the shape is the protocol's own form, and still accepted.
    const nested = await infer(JSON.stringify([new Array(width()).fill(0)]));
    expect(nested.status).toBe(200);
  });

  it('an FP32 value beyond the type is a 400 naming the element and the range, not a silent null', async () => {
    const values = (first: number, last: number): number[] => [first, ...new Array(width() - 2).fill(0), last];
    const answer = await infer(JSON.stringify(values(0.5, 1e39)));
    expect(answer.status).toBe(400);
    expect(answer.error).toBe(
      `inputs.features.data[${width() - 1}]: expected a number from -3.4028235e38 to 3.4028235e38 (FP32), got 1e+39`,
    );
    expect((await infer(JSON.stringify(values(-1e39, 0)))).error).toMatch(
      /data\[0\]: expected a number from -3\.4028235e38/,
    );
    expect((await infer(JSON.stringify(values(3.4028234663852886e38, 0)))).status).toBe(200);
  });
});
