import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServing, type RunningServer } from '../../src/server/serving.ts';
import { decodeBytesElements, encodeBytesElements, tensorFromRawBytes } from '../../src/protocol/binary-tensors.ts';

let server: RunningServer;
/** One feature row as wide as the served version's input (the example's newer versions add features). */
let row: number[];
let width: number;

beforeAll(async () => {
  server = await startServing({ paths: ['examples/fraud-detector'], port: 0, logger: pino({ level: 'silent' }) });
  width = server.repository.version('fraud_detector').signature.inputs[0]!.shape[1]!;
  row = Array.from({ length: width }, (_, i) => (i === 0 ? Math.log1p(120) : i === 3 ? 1 : 0));
});
afterAll(async () => {
  await server?.close();
});

/** JSON header then raw bytes, as Triton's HTTP client sends them. */
function binaryBody(header: object, ...tensors: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...tensors]), headerLength: json.byteLength };
}

function fp32(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

async function infer(body: Buffer | string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${server.url}/v2/models/fraud_detector/infer`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
}

describe('REST binary tensor extension', () => {
  it('takes binary inputs and returns binary outputs when binary_data_output is set', async () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [2, width], parameters: { binary_data_size: 8 * width } },
        ],
        parameters: { binary_data_output: true },
      },
      fp32([...row, ...row]),
    );
    const response = await infer(body, {
      'inference-header-content-length': String(headerLength),
      'content-type': 'application/octet-stream',
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/application\/octet-stream/);
    expect(response.headers.get('server-timing')).toMatch(/total;dur=/);
    const bytes = Buffer.from(await response.arrayBuffer());
    const length = Number(response.headers.get('inference-header-content-length'));
    const header = JSON.parse(bytes.toString('utf8', 0, length)) as {
      outputs: { name: string; shape: number[]; parameters: { binary_data_size: number } }[];
    };
    expect(header.outputs[0]).toEqual({
      name: 'fraud_probability',
      datatype: 'FP32',
      shape: [2, 1],
      parameters: { binary_data_size: 8 },
    });
    expect(bytes.byteLength - length).toBe(8);
    const p = bytes.readFloatLE(length);
    expect(p).toBeGreaterThan(0);
    expect(bytes.readFloatLE(length + 4)).toBe(p);
  });

  it('accepts a binary body under any content-type when the header length is present, and answers JSON unless asked', async () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [1, width], parameters: { binary_data_size: 4 * width } },
        ],
      },
      fp32(row),
    );
    const response = await infer(body, {
      'inference-header-content-length': String(headerLength),
      'content-type': 'application/json',
    });
    expect(response.status).toBe(200);
    const json = (await response.json()) as { outputs: { data: number[] }[] };
    expect(json.outputs[0]!.data).toHaveLength(1);
  });

  it('honours binary_data per output over the request default', async () => {
    const { body, headerLength } = binaryBody({
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width], data: row }],
      outputs: [{ name: 'fraud_probability', parameters: { binary_data: false } }],
      parameters: { binary_data_output: true },
    });
    const response = await infer(body, { 'inference-header-content-length': String(headerLength) });
    expect(response.status).toBe(200);
    expect(response.headers.get('inference-header-content-length')).toBeNull();
    expect(((await response.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toHaveLength(1);
  });

  it('rejects a header length past the body', async () => {
    const { body } = binaryBody({ inputs: [] });
    const response = await infer(body, {
      'inference-header-content-length': '5000',
      'content-type': 'application/octet-stream',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: `Inference-Header-Content-Length: 5000 is past the end of the ${body.byteLength}-byte body`,
      code: 'CALIPER_MALFORMED_BODY',
    });
  });

  it('rejects binary sizes that do not match the shape or the data sent', async () => {
    const wrongSize = binaryBody(
      {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [1, width], parameters: { binary_data_size: 4 * width - 4 } },
        ],
      },
      fp32(row).subarray(4),
    );
    let response = await infer(wrongSize.body, { 'inference-header-content-length': String(wrongSize.headerLength) });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe(
      `inputs.features binary data: shape [1, ${width}] of FP32 needs ${4 * width} bytes (${width} × 4), got ${4 * width - 4}`,
    );

    const pastEnd = binaryBody(
      { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, width], parameters: { binary_data_size: 400 } }] },
      fp32(row),
    );
    response = await infer(pastEnd.body, { 'inference-header-content-length': String(pastEnd.headerLength) });
    expect(((await response.json()) as { error: string }).error).toContain(
      `binary_data_size: 400 bytes from binary offset 0 run past the ${4 * width} bytes`,
    );

    const leftover = binaryBody(
      {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [1, width], parameters: { binary_data_size: 4 * width } },
        ],
      },
      fp32(row),
      Buffer.alloc(4),
    );
    response = await infer(leftover.body, { 'inference-header-content-length': String(leftover.headerLength) });
    expect(((await response.json()) as { error: string }).error).toMatch(/4 bytes of binary data are left over/);

    const badHeader = Buffer.concat([Buffer.from('{"inputs": ['), fp32(row)]);
    response = await infer(badHeader, { 'inference-header-content-length': '12' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe('CALIPER_MALFORMED_BODY');
  });
});

describe('raw BYTES elements', () => {
  it('decodes 4-byte little-endian length-prefixed elements as Triton encodes them', () => {
    const parts = ['cat', '', 'naïve'].map((s) => Buffer.from(s, 'utf8'));
    const encoded = Buffer.concat(
      parts.flatMap((p) => {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(p.byteLength);
        return [length, p];
      }),
    );
    expect(tensorFromRawBytes('x', 'BYTES', [3], encoded)).toEqual({
      type: 'string',
      dims: [3],
      data: ['cat', '', 'naïve'],
    });
    expect(Buffer.from(encodeBytesElements(['cat', '', 'naïve'])).equals(encoded)).toBe(true);
  });

  it('rejects truncated and miscounted BYTES data', () => {
    expect(() => decodeBytesElements('x', Uint8Array.from([5, 0, 0, 0, 97]), 1)).toThrow(
      /x: BYTES element 0 declares 5 bytes at byte 0 but only 1 remain/,
    );
    expect(() => decodeBytesElements('x', Uint8Array.from([1, 0]), 1)).toThrow(/truncated 4-byte length prefix/);
    expect(() => decodeBytesElements('x', encodeBytesElements(['a', 'b']), 3)).toThrow(
      /expected 3 BYTES elements for the shape, got 2/,
    );
  });
});
